"""Outbound HTTP during ``decide``, over ``wasi:http/outgoing-handler``.

Synchronous: the plugin blocks until the whole response is in. The host
checks every request against the manifest's grants and adds credentials it
holds; a request it denies raises a non-retryable :class:`PluginError`,
network failures and timeouts a retryable one. Under
:class:`fieldhook.testing.FakeHost` the answers are canned.

    from fieldhook import http
    job = http.get_json(event.entity.url)
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from typing import Any, List, Optional

from . import Header, PluginError, Request, _host

#: Largest response body read: 8 MiB (as the Rust SDK).
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class Response:
    """A complete response."""

    url: str
    status: int
    headers: List[Header]
    body: bytes

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        for h in self.headers:
            if h.name.lower() == name.lower():
                return h.value.decode("utf-8", "replace")
        return None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; not JSON is a fatal PluginError."""
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise PluginError.fatal(f"{self.url}: response body is not JSON: {e}") from None

    def error_for_status(self) -> "Response":
        """This response when 2xx; else a PluginError, retryable for 408,
        425, 429 and 5xx, fatal for the rest."""
        if not self.ok:
            retryable = self.status in (408, 425, 429) or self.status >= 500
            raise PluginError(f"{self.url} answered HTTP {self.status}", retryable)
        return self


def send(request: Request, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Response:
    """Sends ``request`` now and reads the whole response (any status is
    returned: see :meth:`Response.error_for_status`). Its idempotency key,
    if any, is sent as ``Idempotency-Key``."""
    return _host.current().http_send(request, max_body_bytes)


def get(url: str) -> Response:
    """``GET url``, reading the whole response."""
    return send(Request.get(url))


def get_json(url: str) -> Any:
    """``GET url`` with ``Accept: application/json``; a non-2xx or non-JSON
    answer raises a PluginError."""
    return send(Request.get(url).header("Accept", "application/json")).error_for_status().json()
