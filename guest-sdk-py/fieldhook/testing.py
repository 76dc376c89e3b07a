"""Unit-testing fieldhook plugins under plain CPython, without a WebAssembly
build: a fake host (config, kv, log, canned HTTP answers) and fake events
that behave like the host's (read field by field, unusable after the call)::

    import unittest
    from fieldhook.testing import FakeHost, event
    import app

    class AppTest(unittest.TestCase):
        def test_a_completed_job_is_posted(self):
            host = FakeHost(config={"endpoint": "https://books.example.com/x"})
            result = host.run(app.Handler(), event(kind="job.completed", body={"job": {"id": "j1"}}))
            self.assertEqual(result.type, "deliver")
            self.assertEqual(result.requests[0].json, {"id": "j1"})

Run with ``python3 -m unittest`` with ``guest-sdk-py`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from . import Deliver, Drop, EntityRef, Header, Plugin, PluginError, Request, Skip, _host
from .http import Response

__all__ = ["CannedResponse", "DeliveredRequest", "FakeEvent", "FakeHost", "Result", "SentRequest", "event", "event_from_sample"]

Body = Union[bytes, str, Any]


def _bytes(value: Body) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return _json.dumps(value, separators=(",", ":")).encode()


class FakeEvent:
    """A fake of the host's ``event`` resource, with the same methods.
    ``reads`` lists the fields the plugin read, in order (``header:<name>``
    for single headers); ``released`` is True once the SDK let go of it."""

    def __init__(self, **fields: Any):
        self._f = fields
        self.reads: List[str] = []
        self.released = False
        headers = fields["headers"]
        pairs = headers.items() if isinstance(headers, dict) else headers
        self.header_list = [Header(n, _bytes(v)) for n, v in pairs]
        self.body_bytes = _bytes(fields["body"])

    def _get(self, name: str, value: Any) -> Any:
        if self.released:
            raise RuntimeError(f"event.{name}() called after the call ended: the host's borrow is gone")
        self.reads.append(name)
        return value

    def id(self) -> str:
        return self._get("id", self._f["id"])

    def source(self) -> str:
        return self._get("source", self._f["source"])

    def vendor(self) -> str:
        return self._get("vendor", self._f["vendor"])

    def kind(self) -> str:
        return self._get("kind", self._f["kind"])

    def entity(self) -> Optional[EntityRef]:
        e = self._f["entity"]
        if isinstance(e, dict):
            e = EntityRef(e["kind"], str(e["id"]), e.get("url"))
        return self._get("entity", e)

    def received_at_ms(self) -> int:
        return self._get("received_at_ms", self._f["received_at_ms"])

    def occurred_at(self) -> Optional[str]:
        return self._get("occurred_at", self._f["occurred_at"])

    def attempt(self) -> int:
        return self._get("attempt", self._f["attempt"])

    def dedupe_key(self) -> Optional[str]:
        return self._get("dedupe_key", self._f["dedupe_key"])

    def parsed(self) -> bool:
        return self._get("parsed", self._f["parsed"])

    def coalesced(self) -> int:
        return self._get("coalesced", self._f["coalesced"])

    def header(self, name: str) -> Optional[bytes]:
        found = next((h.value for h in self.header_list if h.name.lower() == name.lower()), None)
        return self._get(f"header:{name.lower()}", found)

    def headers(self) -> List[Header]:
        return self._get("headers", list(self.header_list))

    def body(self) -> bytes:
        return self._get("body", self.body_bytes)


def event(
    *,
    id: str = "evt_test",
    source: str = "test",
    vendor: str = "test",
    kind: str = "unknown",
    entity: Union[EntityRef, Dict[str, Any], None] = None,
    received_at_ms: int = 0,
    occurred_at: Optional[str] = None,
    attempt: int = 1,
    dedupe_key: Optional[str] = None,
    parsed: bool = True,
    coalesced: int = 1,
    headers: Union[Dict[str, Body], List[Tuple[str, Body]], None] = None,
    body: Body = b"",
) -> FakeEvent:
    """An event as the host would lend it. ``body`` may be bytes, text or
    any JSON value; ``headers`` a dict or a list of pairs; ``entity`` an
    :class:`EntityRef` or ``{"kind", "id", "url"}``."""
    return FakeEvent(
        id=id,
        source=source,
        vendor=vendor,
        kind=kind,
        entity=entity,
        received_at_ms=received_at_ms,
        occurred_at=occurred_at,
        attempt=attempt,
        dedupe_key=dedupe_key,
        parsed=parsed,
        coalesced=coalesced,
        headers=headers or {},
        body=body,
    )


def event_from_sample(sample: Union[Dict[str, Any], str]) -> FakeEvent:
    """An event from a ``fieldhook plugin run --event`` sample file (its path,
    or its parsed JSON)."""
    if isinstance(sample, str):
        with open(sample, encoding="utf-8") as f:
            sample = _json.load(f)
    return event(
        source=sample.get("source", "test"),
        vendor=sample.get("vendor", "test"),
        kind=sample.get("kind", "unknown"),
        entity=sample.get("entity"),
        occurred_at=sample.get("occurred_at"),
        headers=sample.get("headers") or {},
        body=sample.get("body", b""),
    )


@dataclass
class CannedResponse:
    """An answer to outbound HTTP: ``url`` exact or a prefix ending in ``*``;
    ``method`` None for any; a ``body`` that is not bytes or text is sent as JSON."""

    url: str
    status: int = 200
    method: Optional[str] = None
    headers: Dict[str, str] = field(default_factory=dict)
    body: Body = b""

    def matches(self, method: str, url: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return url.startswith(self.url[:-1]) if self.url.endswith("*") else url == self.url


@dataclass
class SentRequest:
    """An outbound request the plugin made during the call."""

    method: str
    url: str
    headers: Dict[str, str]
    body: bytes
    outcome: str  # "canned" or "denied"


@dataclass
class DeliveredRequest:
    """A request of a ``deliver`` decision."""

    method: str
    url: str
    headers: Dict[str, str]
    body: bytes
    idempotency_key: Optional[str]

    @property
    def json(self) -> Any:
        return _json.loads(self.body) if self.body else None


@dataclass
class Result:
    """What a call decided: ``type`` is ``skip``, ``drop`` (``reason``),
    ``deliver`` (``requests``) or ``error`` (``message``, ``retryable``)."""

    type: str
    reason: Optional[str] = None
    requests: List[DeliveredRequest] = field(default_factory=list)
    message: Optional[str] = None
    retryable: Optional[bool] = None


class _Failed(Exception):
    def __init__(self, error: PluginError):
        super().__init__(error.message)
        self.error = error


class FakeHost:
    """A fake fieldhook host: ``config`` values, an in-memory ``kv`` (with
    ``kv_ttl`` recording TTLs; ``kv_fail`` makes every kv call fail with that
    kv-error case), ``logs`` recorded as ``(level, message)``, and canned
    answers to outbound HTTP (``responses``). A request that matches none is
    denied as the daemon's policy denies it (a fatal PluginError); every
    request is recorded in ``requests``."""

    def __init__(
        self,
        config: Optional[Dict[str, str]] = None,
        kv: Optional[Dict[str, Body]] = None,
        responses: Optional[List[CannedResponse]] = None,
        kv_fail: Optional[str] = None,
    ):
        self.config: Dict[str, str] = dict(config or {})
        self.kv: Dict[str, bytes] = {k: _bytes(v) for k, v in (kv or {}).items()}
        self.kv_ttl: Dict[str, int] = {}
        self.kv_fail = kv_fail
        self.responses: List[CannedResponse] = list(responses or [])
        self.logs: List[Tuple[str, str]] = []
        self.requests: List[SentRequest] = []

    def install(self) -> "FakeHost":
        """Makes this the SDK's host (``run`` does it for you)."""
        _host.use_host(self)
        return self

    # The host interface the SDK calls.
    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def config_entries(self) -> List[Tuple[str, str]]:
        return sorted(self.config.items())

    def _kv_check(self) -> None:
        if self.kv_fail:
            raise _host.KvFailure(self.kv_fail, f"fake {self.kv_fail}")

    def kv_get(self, key: str) -> Optional[bytes]:
        self._kv_check()
        return self.kv.get(key)

    def kv_set(self, key: str, value: bytes, ttl_ms: Optional[int]) -> None:
        self._kv_check()
        self.kv[key] = value
        if ttl_ms is None:
            self.kv_ttl.pop(key, None)
        else:
            self.kv_ttl[key] = ttl_ms

    def kv_delete(self, key: str) -> bool:
        self._kv_check()
        return self.kv.pop(key, None) is not None

    def release(self, event: Any) -> None:
        if isinstance(event, FakeEvent):
            event.released = True

    def lower(self, outcome: Any) -> Any:
        if isinstance(outcome, PluginError):
            raise _Failed(outcome)
        return outcome

    def http_send(self, request: Request, max_body_bytes: int) -> Response:
        headers = {h.name.lower(): h.value.decode("utf-8", "replace") for h in request.headers}
        if request.key is not None:
            headers["idempotency-key"] = request.key
        sent = SentRequest(request.method, request.url, headers, request.body, "denied")
        self.requests.append(sent)
        rule = next((r for r in self.responses if r.matches(request.method, request.url)), None)
        if rule is None:
            raise PluginError.fatal(f"the host denied {request.url}: grant it in plugin.toml (see docs/plugin-guide.md)")
        sent.outcome = "canned"
        json_body = not isinstance(rule.body, (bytes, bytearray, str))
        response_headers = [Header(k, v.encode()) for k, v in rule.headers.items()]
        if json_body:
            response_headers.append(Header("content-type", b"application/json"))
        body = _bytes(rule.body)
        if len(body) > max_body_bytes:
            raise PluginError.fatal(f"{request.method} {request.url}: response body is larger than {max_body_bytes} bytes")
        return Response(request.url, rule.status, response_headers, body)

    def run(self, plugin: Plugin, ev: FakeEvent) -> Result:
        """Calls ``plugin.handle`` (the WIT export) on ``ev`` with this host
        installed, as the daemon would, and says what it decided. Fails when
        the SDK did not let go of the event."""
        self.install()
        try:
            decision = plugin.handle(ev)
        except _Failed as e:
            result = Result("error", message=e.error.message, retryable=e.error.retryable)
        else:
            result = _describe(decision)
        if isinstance(ev, FakeEvent) and not ev.released:
            raise AssertionError("the event was not released by the end of the call")
        return result


def _describe(decision: Any) -> Result:
    if isinstance(decision, Skip):
        return Result("skip")
    if isinstance(decision, Drop):
        return Result("drop", reason=decision.reason)
    if isinstance(decision, Deliver):
        return Result(
            "deliver",
            requests=[
                DeliveredRequest(
                    r.method,
                    r.url,
                    {h.name.lower(): h.value.decode("utf-8", "replace") for h in r.headers},
                    r.body,
                    r.key,
                )
                for r in decision.requests
            ],
        )
    raise AssertionError(f"not a decision: {decision!r}")
