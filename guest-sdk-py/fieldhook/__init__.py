"""Write fieldhook plugins in Python.

A plugin is a module (``app.py``) with a class ``Handler`` that subclasses
:class:`Plugin`; ``guest-sdk-py/build.py`` turns it into a WebAssembly
component for the ``fieldhook:plugin/plugin`` world with componentize-py::

    import fieldhook
    from fieldhook import Event, Request, config, deliver, drop

    class Handler(fieldhook.Plugin):
        def accepts(self, event: Event) -> bool:
            return event.kind == "job.completed"

        def decide(self, event: Event) -> fieldhook.Decision:
            job = event.json()["job"]
            return deliver(Request.post(config.require("endpoint")).json(job))

The WIT bindings (``wit_world``) are generated at build time. They are
imported here at module load: componentize-py snapshots the interpreter
after the app's imports, and a component cannot load modules later. Under
plain CPython (unit tests) they are absent and the pure parts still work.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, List, Optional, Union
from urllib.parse import urlsplit

try:
    from componentize_py_types import Err as _Err
    from wit_world.imports import config as _wit_config
    from wit_world.imports import fieldhook_plugin_types as _wit
    from wit_world.imports import log as _wit_log
except ImportError:  # plain CPython: no component bindings
    _Err = _wit = _wit_config = _wit_log = None  # type: ignore[assignment]

__all__ = [
    "Decision",
    "Deliver",
    "Drop",
    "EntityRef",
    "Event",
    "Header",
    "Plugin",
    "PluginError",
    "Request",
    "config",
    "deliver",
    "drop",
    "log",
]


class PluginError(Exception):
    """A failure to handle an event; raise it from ``decide``.

    ``retryable`` is True when running again later may succeed (a fetch timed
    out), False when it never will (the payload is not what the plugin handles).
    """

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    @classmethod
    def retry(cls, message: str) -> "PluginError":
        return cls(message, True)

    @classmethod
    def fatal(cls, message: str) -> "PluginError":
        return cls(message, False)


@dataclass(frozen=True)
class Header:
    """One HTTP header. Values are bytes: vendors do send non-UTF-8."""

    name: str
    value: bytes


@dataclass(frozen=True)
class EntityRef:
    """The record an event is about: vendor's type (lower case), id, URL."""

    kind: str
    id: str
    url: Optional[str] = None


@dataclass
class Event:
    """A verified webhook as the host stored it."""

    id: str
    """Host-assigned id, stable across retries and replays (``evt_...``)."""
    source: str
    """Name of the configured source it arrived on."""
    vendor: str
    """Vendor of that source: ``housecall-pro``, ``servicetrade``, ..."""
    kind: str
    """Normalized kind, ``<entity>.<change>``; ``unknown`` when not said."""
    entity: Optional[EntityRef]
    received_at_ms: int
    """When the host received it, ms since the Unix epoch."""
    occurred_at: Optional[str]
    """When the vendor says it happened (vendor's own text)."""
    attempt: int
    """1 on the first run of this plugin on this event, then 2, 3, ..."""
    headers: List[Header]
    body: bytes
    _json: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_wit(cls, raw: Any) -> "Event":
        entity = raw.entity
        return cls(
            id=raw.id,
            source=raw.source,
            vendor=raw.vendor,
            kind=raw.kind,
            entity=EntityRef(entity.kind, entity.id, entity.url) if entity is not None else None,
            received_at_ms=raw.received_at_ms,
            occurred_at=raw.occurred_at,
            attempt=raw.attempt,
            headers=[Header(h.name, bytes(h.value)) for h in raw.headers],
            body=bytes(raw.body),
        )

    def header(self, name: str) -> Optional[str]:
        """First value of a header (case-insensitive name), as text."""
        lower = name.lower()
        for h in self.headers:
            if h.name.lower() == lower:
                return h.value.decode("utf-8", "replace")
        return None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (once); not JSON is a fatal PluginError."""
        if self._json is None:
            try:
                self._json = _json.loads(self.body)
            except ValueError as e:
                raise PluginError.fatal(f"event {self.id}: body is not JSON ({e})") from None
        return self._json


class Request:
    """An HTTP request for the host to deliver after ``decide`` returns, or to
    send at once with :func:`fieldhook.http.send`. Chain the setters::

        Request.post(url).json({"a": 1}).idempotency_key("x:" + event.id)
    """

    def __init__(self, method: str, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PluginError.fatal(f"request URL `{url}` is not an absolute http or https URL")
        self.method = method.upper()
        self.url = url
        self.headers: List[Header] = []
        self.body = b""
        self.key: Optional[str] = None

    @classmethod
    def get(cls, url: str) -> "Request":
        return cls("GET", url)

    @classmethod
    def post(cls, url: str) -> "Request":
        return cls("POST", url)

    @classmethod
    def put(cls, url: str) -> "Request":
        return cls("PUT", url)

    @classmethod
    def patch(cls, url: str) -> "Request":
        return cls("PATCH", url)

    @classmethod
    def delete(cls, url: str) -> "Request":
        return cls("DELETE", url)

    def header(self, name: str, value: Union[str, bytes]) -> "Request":
        """Sets a header, replacing any of the same name."""
        self.headers = [h for h in self.headers if h.name.lower() != name.lower()]
        self.headers.append(Header(name, value.encode() if isinstance(value, str) else value))
        return self

    def header_value(self, name: str) -> Optional[str]:
        for h in self.headers:
            if h.name.lower() == name.lower():
                return h.value.decode("utf-8", "replace")
        return None

    def data(self, body: Union[str, bytes]) -> "Request":
        """Sets the body as is."""
        self.body = body.encode() if isinstance(body, str) else body
        return self

    def json(self, value: Any) -> "Request":
        """JSON body, and ``Content-Type: application/json`` unless set."""
        self.body = _json.dumps(value, separators=(",", ":")).encode()
        if self.header_value("content-type") is None:
            self.header("Content-Type", "application/json")
        return self

    def idempotency_key(self, key: str) -> "Request":
        """Sent as ``Idempotency-Key``; the host derives one when unset."""
        self.key = key
        return self

    def to_wit(self) -> Any:
        t = _wit
        return t.OutboundRequest(
            method=self.method,
            url=self.url,
            headers=[t.Header(h.name, h.value) for h in self.headers],
            body=self.body,
            idempotency_key=self.key,
        )


@dataclass(frozen=True)
class Drop:
    """Nothing to do; the reason is recorded with the job."""

    reason: str


@dataclass(frozen=True)
class Deliver:
    """Deliver these requests, each on its own with retries."""

    requests: List[Request]


Decision = Union[Drop, Deliver]


def deliver(*requests: Request) -> Deliver:
    return Deliver(list(requests))


def drop(reason: str) -> Drop:
    return Drop(reason)


class _Config:
    """The manifest's ``[config]`` values."""

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        value = _wit_config.get(key)
        return default if value is None else value

    def require(self, key: str) -> str:
        value = self.get(key)
        if not value:
            raise PluginError.fatal(f"config `{key}` is not set: add it under [config] in plugin.toml")
        return value

    def entries(self) -> dict:
        return dict(_wit_config.entries())


class _Log:
    """Logging into the daemon's log, tagged with the plugin's name."""

    def _log(self, level: str, message: str) -> None:
        _wit_log.log(getattr(_wit_log.Level, level), str(message))

    def trace(self, m: str) -> None:
        self._log("TRACE", m)

    def debug(self, m: str) -> None:
        self._log("DEBUG", m)

    def info(self, m: str) -> None:
        self._log("INFO", m)

    def warn(self, m: str) -> None:
        self._log("WARN", m)

    def error(self, m: str) -> None:
        self._log("ERROR", m)


config = _Config()
log = _Log()


class Plugin:
    """Base of a plugin's ``Handler`` class: implements the WIT ``handler``
    export and calls :meth:`accepts` and :meth:`decide` with a typed
    :class:`Event`. A :class:`PluginError` raised by ``decide`` becomes the
    WIT ``plugin-error``; any other exception a non-retryable one naming it.
    """

    def accepts(self, event: Event) -> bool:
        """Cheap first look; False drops the event. Default: every event."""
        return True

    def decide(self, event: Event) -> Decision:
        raise PluginError.fatal(f"{type(self).__name__} does not implement decide()")

    # The WIT-facing methods, called by the componentize-py bindings.
    def filter(self, event: Any) -> bool:
        try:
            return bool(self.accepts(Event.from_wit(event)))
        except Exception as e:  # a broken filter drops, it does not trap
            log.warn(f"accepts() raised {type(e).__name__}: {e}; event dropped")
            return False

    def handle(self, event: Any) -> Any:
        Err, t = _Err, _wit
        try:
            decision = self.decide(Event.from_wit(event))
        except PluginError as e:
            raise Err(t.PluginError(e.message, e.retryable))
        except Exception as e:
            raise Err(t.PluginError(f"uncaught {type(e).__name__}: {e}", False))
        if isinstance(decision, Drop):
            return t.Decision_Drop(decision.reason)
        if isinstance(decision, Deliver):
            return t.Decision_Deliver([r.to_wit() for r in decision.requests])
        raise Err(t.PluginError("decide() must return deliver(...) or drop(reason)", False))
