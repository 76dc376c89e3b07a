"""Outbound HTTP during ``decide`` over ``wasi:http/outgoing-handler``.

Synchronous: the plugin blocks until the response is in. The host checks
every request against the manifest's grants (and adds credentials it holds);
a request it denies raises a non-retryable :class:`PluginError`, network
failures and timeouts a retryable one.

    from fieldhook import Request, http
    response = http.send(Request.get(event.entity.url))
    record = response.json()
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple
from urllib.parse import urlsplit

from . import Header, PluginError, Request

try:  # imported at load time: a component cannot import modules later
    from componentize_py_types import Err, Ok
    from wit_world.imports import outgoing_handler
    from wit_world.imports import wasi_http_types as h
    from wit_world.imports.streams import StreamError_Closed
except ImportError:  # plain CPython: no component bindings
    pass

_WRITE_CHUNK = 4096
_READ_CHUNK = 64 * 1024
# Errors that may go away on their own: worth a retry of the job.
_TRANSIENT = (
    "DnsTimeout",
    "DestinationUnavailable",
    "ConnectionRefused",
    "ConnectionTerminated",
    "ConnectionTimeout",
    "ConnectionReadTimeout",
    "ConnectionWriteTimeout",
    "ConnectionLimitReached",
    "HttpResponseTimeout",
    "HttpResponseIncomplete",
)


@dataclass
class Response:
    status: int
    headers: List[Header]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        for h in self.headers:
            if h.name.lower() == name.lower():
                return h.value.decode("utf-8", "replace")
        return None

    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise PluginError.fatal(f"response ({self.status}) is not JSON: {e}") from None

    def raise_for_status(self) -> "Response":
        """Raises a PluginError for a non-2xx (retryable for 408, 429, 5xx)."""
        if not self.ok():
            retryable = self.status in (408, 425, 429) or self.status >= 500
            raise PluginError(f"HTTP {self.status}: {self.body[:200]!r}", retryable)
        return self


def _method(name: str) -> Any:
    known = {
        "GET": h.Method_Get,
        "HEAD": h.Method_Head,
        "POST": h.Method_Post,
        "PUT": h.Method_Put,
        "DELETE": h.Method_Delete,
        "OPTIONS": h.Method_Options,
        "PATCH": h.Method_Patch,
    }
    return known[name]() if name in known else h.Method_Other(name)


def _error(e: Any, url: str) -> PluginError:
    name = type(getattr(e, "value", e)).__name__.replace("ErrorCode_", "")
    if name == "HttpRequestDenied":
        return PluginError.fatal(
            f"the host denied {url}: grant it in plugin.toml (see docs/plugin-guide.md)"
        )
    return PluginError(f"request to {url} failed: {name}", name in _TRANSIENT)


def send(request: Request) -> Response:
    """Sends a request now and returns the whole response."""

    parts = urlsplit(request.url)
    headers: List[Tuple[str, bytes]] = [(x.name, x.value) for x in request.headers]
    if request.key is not None:
        headers.append(("Idempotency-Key", request.key.encode()))
    try:
        out = h.OutgoingRequest(h.Fields.from_list(headers))
        out.set_method(_method(request.method))
        out.set_scheme(h.Scheme_Https() if parts.scheme == "https" else h.Scheme_Http())
        out.set_authority(parts.netloc)
        out.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        body = out.body()
        future = outgoing_handler.handle(out, None)
        with body.write() as stream:
            for i in range(0, len(request.body), _WRITE_CHUNK):
                stream.blocking_write_and_flush(request.body[i : i + _WRITE_CHUNK])
        h.OutgoingBody.finish(body, None)
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    except Err as e:
        raise _error(e, request.url) from None
    if outcome is None or not isinstance(outcome, Ok) or not isinstance(outcome.value, Ok):
        err = outcome.value.value if isinstance(outcome, Ok) else outcome
        raise _error(err, request.url)
    response = outcome.value.value
    status = response.status()
    with response.headers() as fields:
        response_headers = [Header(n, bytes(v)) for n, v in fields.entries()]
    data = bytearray()
    incoming = response.consume()
    with incoming.stream() as stream:
        while True:
            try:
                data += stream.blocking_read(_READ_CHUNK)
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise PluginError.retry(f"reading the response of {request.url} failed") from None
    return Response(status, response_headers, bytes(data))


def get_json(url: str) -> Any:
    """``GET url`` and its JSON body; a non-2xx raises a PluginError."""
    return send(Request.get(url).header("Accept", "application/json")).raise_for_status().json()
