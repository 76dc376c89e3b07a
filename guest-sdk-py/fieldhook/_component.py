"""The host inside a component: the ``fieldhook:plugin@0.2.0`` imports and
``wasi:http/outgoing-handler``, through the bindings componentize-py
generates (``wit_world``). Imported at load time by ``fieldhook``:
componentize-py snapshots the interpreter after the app's imports, and a
component cannot import modules later. Under plain CPython the import of
``wit_world`` fails and ``fieldhook`` goes on without this module.
"""

from __future__ import annotations

from typing import Any, List, Tuple
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import config as wit_config
from wit_world.imports import fieldhook_plugin_types as wit
from wit_world.imports import kv as wit_kv
from wit_world.imports import log as wit_log
from wit_world.imports import outgoing_handler
from wit_world.imports import wasi_http_types as h
from wit_world.imports.streams import StreamError_Closed

from . import Deliver, Drop, Header, PluginError, Request, Skip, _host
from .http import Response

# `blocking-write-and-flush` takes at most 4096 bytes per call.
_WRITE_CHUNK = 4096
_READ_CHUNK = 64 * 1024
# Problems with the request or the grants: they never go away on their own.
_FATAL = {
    "HttpRequestDenied",
    "DestinationIpProhibited",
    "HttpRequestMethodInvalid",
    "HttpRequestUriInvalid",
    "HttpRequestUriTooLong",
    "HttpRequestBodySize",
    "HttpRequestHeaderSectionSize",
    "HttpRequestHeaderSize",
    "HttpResponseBodySize",
    "LoopDetected",
    "ConfigurationError",
}
_LEVELS = {
    "trace": wit_log.Level.TRACE,
    "debug": wit_log.Level.DEBUG,
    "info": wit_log.Level.INFO,
    "warn": wit_log.Level.WARN,
    "error": wit_log.Level.ERROR,
}
_KV_ERRORS = {
    "KvError_TooLarge": "too-large",
    "KvError_QuotaExceeded": "quota-exceeded",
    "KvError_Unavailable": "unavailable",
}


def _kv(fn: Any) -> Any:
    try:
        return fn()
    except Err as e:
        raise _host.KvFailure(_KV_ERRORS.get(type(e.value).__name__, "unavailable"), str(e.value.value)) from None


class ComponentHost:
    """The host of a running component."""

    def log(self, level: str, message: str) -> None:
        wit_log.log(_LEVELS[level], message)

    def config_entries(self) -> List[Tuple[str, str]]:
        return list(wit_config.entries())

    def kv_get(self, key: str) -> Any:
        return _kv(lambda: wit_kv.get(key))

    def kv_set(self, key: str, value: bytes, ttl_ms: Any) -> None:
        _kv(lambda: wit_kv.set(key, value, ttl_ms))

    def kv_delete(self, key: str) -> bool:
        return _kv(lambda: wit_kv.delete(key))

    def release(self, event: Any) -> None:
        # The bindings drop the borrowed handle when `handle` returns.
        pass

    def lower(self, outcome: Any) -> Any:
        if isinstance(outcome, PluginError):
            raise Err(wit.PluginError(outcome.message, outcome.retryable))
        if isinstance(outcome, Skip):
            return wit.Decision_Skip()
        if isinstance(outcome, Drop):
            return wit.Decision_Drop(outcome.reason)
        assert isinstance(outcome, Deliver)
        return wit.Decision_Deliver(
            [
                wit.OutboundRequest(
                    method=r.method,
                    url=r.url,
                    headers=[wit.Header(x.name, x.value) for x in r.headers],
                    body=r.body,
                    idempotency_key=r.key,
                )
                for r in outcome.requests
            ]
        )

    def http_send(self, request: Request, max_body_bytes: int) -> Response:
        return _send(request, max_body_bytes)


def _method(name: str) -> Any:
    known = {
        "GET": h.Method_Get,
        "HEAD": h.Method_Head,
        "POST": h.Method_Post,
        "PUT": h.Method_Put,
        "DELETE": h.Method_Delete,
        "CONNECT": h.Method_Connect,
        "OPTIONS": h.Method_Options,
        "TRACE": h.Method_Trace,
        "PATCH": h.Method_Patch,
    }
    return known[name]() if name in known else h.Method_Other(name)


def _error(code: Any, what: str, url: str) -> PluginError:
    name = type(code).__name__.replace("ErrorCode_", "")
    if name == "HttpRequestDenied":
        return PluginError.fatal(f"the host denied {url}: grant it in plugin.toml (see docs/plugin-guide.md)")
    return PluginError(f"{what}: {name}", name not in _FATAL)


def _send(request: Request, max_body_bytes: int) -> Response:
    what = f"{request.method} {request.url}"
    parts = urlsplit(request.url)
    headers: List[Tuple[str, bytes]] = [(x.name, x.value) for x in request.headers]
    if request.key is not None:
        headers.append(("Idempotency-Key", request.key.encode()))
    if request.body and request.header_value("content-length") is None:
        headers.append(("Content-Length", str(len(request.body)).encode()))
    try:
        out = h.OutgoingRequest(h.Fields.from_list(headers))
        out.set_method(_method(request.method))
        out.set_scheme(h.Scheme_Https() if parts.scheme == "https" else h.Scheme_Http())
        out.set_authority(parts.netloc)
        out.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        body = out.body() if request.body else None
        future = outgoing_handler.handle(out, None)
        if body is not None:
            with body.write() as stream:
                for i in range(0, len(request.body), _WRITE_CHUNK):
                    stream.blocking_write_and_flush(request.body[i : i + _WRITE_CHUNK])
            h.OutgoingBody.finish(body, None)
        with future:
            with future.subscribe() as ready:
                ready.block()
            outcome = future.get()
    except Err as e:
        value = e.value
        if type(value).__name__.startswith("ErrorCode_"):
            raise _error(value, what, request.url) from None
        raise PluginError.retry(f"{what}: {type(value).__name__}") from None
    if outcome is None or not isinstance(outcome, Ok):
        raise PluginError.retry(f"{what}: no response")
    if not isinstance(outcome.value, Ok):
        raise _error(outcome.value.value, what, request.url)
    return _read(what, request.url, outcome.value.value, max_body_bytes)


def _read(what: str, url: str, response: Any, max_body_bytes: int) -> Response:
    data = bytearray()
    with response:
        status = response.status()
        with response.headers() as fields:
            headers = [Header(n, bytes(v)) for n, v in fields.entries()]
        with response.consume() as incoming:
            with incoming.stream() as stream:
                while True:
                    try:
                        data += stream.blocking_read(_READ_CHUNK)
                    except Err as e:
                        if isinstance(e.value, StreamError_Closed):
                            break
                        raise PluginError.retry(f"{what}: reading the response failed") from None
                    if len(data) > max_body_bytes:
                        raise PluginError.fatal(f"{what}: response body is larger than {max_body_bytes} bytes")
    return Response(url, status, headers, bytes(data))


def install() -> None:
    _host.use_host(ComponentHost())
