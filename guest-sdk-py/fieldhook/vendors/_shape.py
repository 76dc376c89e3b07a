"""Reading a vendor's JSON into typed views, with the Rust SDK's messages."""

from __future__ import annotations

import json
from typing import Any, Callable, List, Optional, TypeVar, Union

from .. import PluginError

T = TypeVar("T")
#: An id some vendors send as a string and others as an integer.
Id = Union[str, int]


class ShapeError(Exception):
    """A body that is JSON but not the documented shape."""


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {'true' if v else 'false'}"
    if isinstance(v, str):
        return f"string {json.dumps(v)}"
    if isinstance(v, (int, float)):
        return f"number {v}"
    return "a list" if isinstance(v, list) else "an object"


def _is(kind: str, v: Any) -> bool:
    if kind == "str":
        return isinstance(v, str)
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "num":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "id":
        return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
    if kind == "obj":
        return isinstance(v, dict)
    if kind == "list":
        return isinstance(v, list)
    return True


_WHAT = {
    "str": "a string",
    "int": "an integer",
    "num": "a number",
    "id": "an id (a string or an integer)",
    "obj": "an object",
    "list": "a list",
}


def opt(obj: dict, key: str, kind: str) -> Any:
    """``obj[key]`` when it is of ``kind``; None when absent or null."""
    v = obj.get(key)
    if v is None:
        return None
    if not _is(kind, v):
        raise ShapeError(f"invalid type: {_describe(v)}, expected {_WHAT[kind]} at `{key}`")
    return v


def req(obj: dict, key: str, kind: str) -> Any:
    """``obj[key]``, which must be there and of ``kind``."""
    v = opt(obj, key, kind)
    if v is None:
        raise ShapeError(f"missing field `{key}`")
    return v


def items(obj: dict, key: str, read: Callable[[Any], T]) -> List[T]:
    """``obj[key]`` as a list of ``read(item)``; [] when absent."""
    out = []
    for i, item in enumerate(opt(obj, key, "list") or []):
        try:
            out.append(read(item))
        except ShapeError as e:
            raise ShapeError(f"{e} in `{key}[{i}]`") from None
    return out


def obj(v: Any, what: str) -> dict:
    if not isinstance(v, dict):
        raise ShapeError(f"invalid type: {_describe(v)}, expected {what}")
    return v


def first_string(d: dict, *keys: str) -> Optional[str]:
    for k in keys:
        if isinstance(d.get(k), str):
            return d[k]
    return None


def trimmed(v: Optional[str]) -> str:
    return v.strip() if isinstance(v, str) else ""


class Vendor:
    """What the error messages say about a vendor."""

    def __init__(self, id: str, name: str, shape: str):
        self.id = id
        self.name = name
        self.shape = shape

    def parse(self, body: Any, read: Callable[[Any], T]) -> T:
        """``body`` (bytes, text or parsed JSON) read with ``read(json)``."""
        if isinstance(body, (bytes, bytearray, str)):
            try:
                body = json.loads(body)
            except ValueError as e:
                raise PluginError.fatal(f"{self.name} body is not JSON: {e}; expected {self.shape}") from None
        return self.read(body, read)

    def read(self, value: Any, read: Callable[[Any], T]) -> T:
        try:
            return read(value)
        except ShapeError as e:
            raise PluginError.fatal(
                f"{self.name} body does not have the expected shape: {e}; expected {self.shape}"
            ) from None

    def error(self, what: str) -> PluginError:
        return PluginError.fatal(f"{self.name} {what}")

    def view(self, event: Any, read: Callable[[Any], T]) -> T:
        """Checks ``event`` comes from this vendor, then reads its body; errors name the event."""
        if event.vendor != self.id:
            raise PluginError.fatal(
                f"event {event.id}: not a {self.name} event: it arrived on source `{event.source}` "
                f"of vendor `{event.vendor}`, not `{self.id}`"
            )
        try:
            value = event._parsed_body()
            if event._json_error is not None:
                raise PluginError.fatal(
                    f"{self.name} body is not JSON: {event._json_error}; expected {self.shape}"
                )
            return self.read(value, read)
        except PluginError as e:
            raise PluginError.fatal(f"event {event.id}: {e.message}") from None
