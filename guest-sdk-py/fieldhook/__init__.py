"""Write fieldhook plugins in Python (contract ``fieldhook:plugin@0.2.0``).

A plugin is a module (``app.py``) with a class ``Handler`` that subclasses
:class:`Plugin`; ``guest-sdk-py/build.py`` turns it into a WebAssembly
component with componentize-py::

    import fieldhook
    from fieldhook import Event, Request, config, deliver, drop

    class Handler(fieldhook.Plugin):
        def accepts(self, event: Event) -> bool:
            return event.kind == "job.completed"

        def decide(self, event: Event) -> fieldhook.Decision:
            job = event.housecall_pro().job()
            return deliver(Request.post(config.require("endpoint")).json({"id": job.id}))

The event is read from the host field by field, on first use, and cached
for the call. The WIT ``handle`` export is :meth:`Plugin.handle`; it calls
``accepts`` then ``decide``. Outside a component (unit tests under plain
CPython) :class:`fieldhook.testing.FakeHost` plays the host.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import urlsplit

from . import _host

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
    "Skip",
    "config",
    "deliver",
    "drop",
    "http",
    "kv",
    "log",
    "skip",
    "vendors",
]


class PluginError(Exception):
    """A failure to handle an event; raise it from ``decide``.

    ``retryable`` is True when running again later may succeed (a fetch timed
    out), False when it never will (the payload is not what the plugin handles).
    ``kv_error`` names the kv-error case of a failed kv call.
    """

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = bool(retryable)
        self.kv_error: Optional[str] = None

    @classmethod
    def retry(cls, message: str) -> "PluginError":
        return cls(message, True)

    @classmethod
    def fatal(cls, message: str) -> "PluginError":
        return cls(message, False)

    def __repr__(self) -> str:
        return f"PluginError({self.message!r}, retryable={self.retryable})"


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


_MISSING = object()


class Event:
    """A verified webhook as the host stored it, lent for one call.

    Each field is read from the host the first time it is used and kept for
    the call: a plugin that looks at ``kind`` and skips never copies the
    body. A field not read during the call cannot be read after it.
    """

    def __init__(self, source: Any):
        self._source = source
        self._cache: Dict[str, Any] = {}
        self._header_cache: Dict[str, Optional[bytes]] = {}
        self._json: Any = _MISSING
        self._json_error: Optional[ValueError] = None

    def _read(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        if self._source is None:
            raise PluginError.fatal(
                f"event field `{name}` read after handle returned: read what you need during the call"
            )
        value = getattr(self._source, name)()
        if name == "entity" and value is not None:
            value = EntityRef(value.kind, value.id, value.url)
        elif name == "headers":
            value = [Header(h.name, bytes(h.value)) for h in value]
        elif name == "body":
            value = bytes(value)
        self._cache[name] = value
        return value

    @property
    def id(self) -> str:
        """Host-assigned id, stable across retries and replays (``evt_...``)."""
        return self._read("id")

    @property
    def source(self) -> str:
        """Name of the configured source it arrived on."""
        return self._read("source")

    @property
    def vendor(self) -> str:
        """Vendor of that source: ``housecall-pro``, ``servicetrade``, ..."""
        return self._read("vendor")

    @property
    def kind(self) -> str:
        """Normalized kind, ``<entity>.<change>``; ``unknown`` when not said."""
        return self._read("kind")

    @property
    def entity(self) -> Optional[EntityRef]:
        """The record the event is about, when known."""
        return self._read("entity")

    @property
    def received_at_ms(self) -> int:
        """When the host received it, ms since the Unix epoch."""
        return self._read("received_at_ms")

    @property
    def occurred_at(self) -> Optional[str]:
        """When the vendor says it happened (vendor's own text)."""
        return self._read("occurred_at")

    @property
    def attempt(self) -> int:
        """1 on the first run of this plugin on this event, then 2, 3, ..."""
        return self._read("attempt")

    @property
    def dedupe_key(self) -> Optional[str]:
        """The key the host deduplicated deliveries of this event on."""
        return self._read("dedupe_key")

    @property
    def parsed(self) -> bool:
        """False when the body was not the JSON the vendor documents."""
        return self._read("parsed")

    @property
    def coalesced(self) -> int:
        """How many events this one stands for (more than 1: a coalesced burst)."""
        return self._read("coalesced")

    @property
    def headers(self) -> List[Header]:
        """Every request header (copies them all; ``header(name)`` asks for one)."""
        return self._read("headers")

    @property
    def body(self) -> bytes:
        """The raw request body."""
        return self._read("body")

    def header_bytes(self, name: str) -> Optional[bytes]:
        """The first header called ``name`` (any case), as bytes."""
        lower = name.lower()
        if "headers" in self._cache:
            for h in self.headers:
                if h.name.lower() == lower:
                    return h.value
            return None
        if lower in self._header_cache:
            return self._header_cache[lower]
        if self._source is None:
            raise PluginError.fatal(
                f"event header `{name}` read after handle returned: read what you need during the call"
            )
        value = self._source.header(name)
        value = None if value is None else bytes(value)
        self._header_cache[lower] = value
        return value

    def header(self, name: str) -> Optional[str]:
        """The first header called ``name`` (any case), as text."""
        value = self.header_bytes(name)
        return None if value is None else value.decode("utf-8", "replace")

    def text(self) -> str:
        """The body as UTF-8 text (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (once); not JSON is a fatal PluginError."""
        value = self._parsed_body()
        if self._json_error is not None:
            raise PluginError.fatal(f"event {self.id}: body is not JSON ({self._json_error})")
        return value

    def _parsed_body(self) -> Any:
        if self._json is _MISSING and self._json_error is None:
            try:
                self._json = _json.loads(self.body)
            except ValueError as e:
                self._json_error = e
        return self._json

    # Typed views of the vendors' bodies (fieldhook.vendors).
    def servicem8(self) -> "vendors.servicem8.Notice":
        return vendors.servicem8.view(self)

    def servicetrade(self) -> "vendors.servicetrade.Message":
        return vendors.servicetrade.view(self)

    def housecall_pro(self) -> "vendors.housecall_pro.Envelope":
        return vendors.housecall_pro.view(self)

    def servicetitan(self) -> "vendors.servicetitan.Envelope":
        return vendors.servicetitan.view(self)

    def jobber(self) -> "vendors.jobber.Notice":
        return vendors.jobber.view(self)

    def standard_webhooks(self) -> "vendors.standard_webhooks.Payload":
        return vendors.standard_webhooks.view(self)

    def _release(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            _host.current().release(source)

    def __repr__(self) -> str:
        known = ", ".join(f"{k}={v!r}" for k, v in self._cache.items() if k not in ("body", "headers"))
        return f"Event({known})"


class Request:
    """An HTTP request: delivered by the host after ``decide`` returns, or
    sent at once with :func:`fieldhook.http.send`. Chain the setters::

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
        """Sets a header, replacing any of the same name (any case)."""
        self.headers = [h for h in self.headers if h.name.lower() != name.lower()]
        return self.append_header(name, value)

    def append_header(self, name: str, value: Union[str, bytes]) -> "Request":
        """Adds a header, keeping others of the same name."""
        self.headers.append(Header(name, value.encode() if isinstance(value, str) else bytes(value)))
        return self

    def header_value(self, name: str) -> Optional[str]:
        for h in self.headers:
            if h.name.lower() == name.lower():
                return h.value.decode("utf-8", "replace")
        return None

    def data(self, body: Union[str, bytes]) -> "Request":
        """Sets the body as is."""
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        return self

    def json(self, value: Any) -> "Request":
        """JSON body, and ``Content-Type: application/json`` unless set."""
        try:
            self.body = _json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as e:
            raise PluginError.fatal(f"{self.method} {self.url}: body cannot be serialized as JSON: {e}") from None
        if self.header_value("content-type") is None:
            self.header("Content-Type", "application/json")
        return self

    def idempotency_key(self, key: str) -> "Request":
        """Sent as ``Idempotency-Key``; for deliveries the host derives one when unset."""
        self.key = key
        return self

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url}, {len(self.body)} bytes)"


@dataclass(frozen=True)
class Skip:
    """Not for this plugin: nothing is recorded beyond the skip."""


@dataclass(frozen=True)
class Drop:
    """Nothing to do; the reason is recorded with the job."""

    reason: str


@dataclass(frozen=True)
class Deliver:
    """Deliver these requests, each on its own with retries."""

    requests: List[Request]


Decision = Union[Skip, Drop, Deliver]


def skip() -> Skip:
    return Skip()


def drop(reason: str) -> Drop:
    return Drop(str(reason))


def deliver(*requests: Request) -> Deliver:
    for r in requests:
        if not isinstance(r, Request):
            raise PluginError.fatal(f"deliver(...) takes Request objects, not {type(r).__name__}")
    return Deliver(list(requests))


class _Config:
    """The manifest's ``[config]`` values (read once per instance: they
    cannot change under a running one)."""

    def __init__(self) -> None:
        self._for: Any = None
        self._entries: Dict[str, str] = {}

    def _all(self) -> Dict[str, str]:
        host = _host.current()
        if self._for is not host:
            self._entries = dict(host.config_entries())
            self._for = host
        return self._entries

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return self._all().get(key, default)

    def require(self, key: str) -> str:
        """A missing or empty value is a fatal PluginError naming the key."""
        value = self._all().get(key)
        if not value:
            raise PluginError.fatal(f"config `{key}` is not set: add it under [config] in plugin.toml")
        return value

    def entries(self) -> Dict[str, str]:
        return dict(self._all())


class _Kv:
    """This plugin's key-value store, kept by the host across calls and
    restarts. A failure is a PluginError: retryable when the store is
    unavailable, fatal when a value is too large or the quota is used up."""

    @staticmethod
    def _call(op: str, key: str, fn: Any) -> Any:
        try:
            return fn()
        except _host.KvFailure as e:
            err = PluginError(f"key-value store: {op} `{key}`: {e.message}", e.tag == "unavailable")
            err.kv_error = e.tag
            raise err from None

    def get(self, key: str) -> Optional[bytes]:
        """The value of ``key``, or None when absent or expired."""
        value = self._call("get", key, lambda: _host.current().kv_get(key))
        return None if value is None else bytes(value)

    def get_text(self, key: str) -> Optional[str]:
        value = self.get(key)
        return None if value is None else value.decode("utf-8", "replace")

    def get_json(self, key: str) -> Any:
        """The value parsed as JSON, or None; not JSON is a fatal PluginError."""
        value = self.get(key)
        if value is None:
            return None
        try:
            return _json.loads(value)
        except ValueError as e:
            raise PluginError.fatal(f"kv value `{key}` is not JSON: {e}") from None

    def set(self, key: str, value: Union[str, bytes], ttl_ms: Optional[int] = None) -> None:
        """Sets ``key``; with ``ttl_ms`` it expires that many ms later."""
        data = value.encode() if isinstance(value, str) else bytes(value)
        self._call("set", key, lambda: _host.current().kv_set(key, data, ttl_ms))

    def set_json(self, key: str, value: Any, ttl_ms: Optional[int] = None) -> None:
        self.set(key, _json.dumps(value, separators=(",", ":")), ttl_ms)

    def delete(self, key: str) -> bool:
        """Removes ``key``; True when it existed."""
        return bool(self._call("delete", key, lambda: _host.current().kv_delete(key)))


class _Log:
    """Logging into the daemon's log, tagged with the plugin's name."""

    def trace(self, message: Any) -> None:
        _host.current().log("trace", str(message))

    def debug(self, message: Any) -> None:
        _host.current().log("debug", str(message))

    def info(self, message: Any) -> None:
        _host.current().log("info", str(message))

    def warn(self, message: Any) -> None:
        _host.current().log("warn", str(message))

    def error(self, message: Any) -> None:
        _host.current().log("error", str(message))


config = _Config()
kv = _Kv()
log = _Log()


class Plugin:
    """Base of a plugin's ``Handler`` class. Its :meth:`handle` is the WIT
    ``handle`` export: it calls :meth:`accepts` (False skips the event), then
    :meth:`decide`. A :class:`PluginError` raised by either becomes the WIT
    ``plugin-error``; any other exception a non-retryable one naming it.
    """

    def accepts(self, event: Event) -> bool:
        """Cheap first look; False skips the event. Default: every event."""
        return True

    def decide(self, event: Event) -> Decision:
        """Skip, drop or deliver (``skip()``, ``drop(reason)``, ``deliver(...)``)."""
        raise PluginError.fatal(f"{type(self).__name__} does not implement decide()")

    def handle(self, event: Any) -> Any:
        """The WIT export (called by the component bindings, or FakeHost)."""
        host = _host.current()
        ev = Event(event)
        try:
            outcome = self._outcome(ev)
        finally:
            ev._release()
        return host.lower(outcome)

    def _outcome(self, event: Event) -> Union[Decision, PluginError]:
        try:
            if not self.accepts(event):
                return Skip()
            decision = self.decide(event)
        except PluginError as e:
            return e
        except Exception as e:
            return PluginError(f"uncaught {type(e).__name__}: {e}", False)
        if isinstance(decision, (Skip, Drop)):
            return decision
        if isinstance(decision, Deliver):
            bad = [r for r in decision.requests if not isinstance(r, Request)]
            if not bad:
                return decision
        return PluginError.fatal("decide() must return skip(), drop(reason) or deliver(...requests)")


# After the names above: both import from this module.
from . import http, vendors  # noqa: E402

try:  # a component: the WIT bindings exist (and must be imported at load time)
    from . import _component
except ImportError:  # plain CPython: unit tests install fieldhook.testing.FakeHost
    _component = None  # type: ignore[assignment]
else:
    _component.install()
