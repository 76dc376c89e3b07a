"""Standard Webhooks (``vendor = "standard-webhooks"``; Svix and many SaaS):
``{"type", "timestamp", "data"}``, with a ``webhook-id`` header stable across
the sender's retries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ._shape import Vendor, obj, opt, req

VENDOR = "standard-webhooks"
VENDOR_INFO = Vendor(VENDOR, "Standard Webhooks", '{"type":"invoice.paid","timestamp":"...","data":{...}}')


@dataclass
class Payload:
    raw: dict
    #: The event type (``type``): ``invoice.paid``, ...
    kind: str
    timestamp: Optional[str]
    data: Any
    #: ``webhook-id`` (or ``svix-id``) header, when read from an event.
    webhook_id: Optional[str] = None

    @classmethod
    def of(cls, raw: Any) -> "Payload":
        raw = obj(raw, "an object")
        return cls(raw, req(raw, "type", "str"), opt(raw, "timestamp", "str"), raw.get("data"))

    def require_data(self) -> Any:
        """``data``, or an error saying it is missing."""
        if self.data is None:
            raise VENDOR_INFO.error(f"`{self.kind}` payload has no `data`")
        return self.data


def parse(body: Any) -> Payload:
    return VENDOR_INFO.parse(body, Payload.of)


def view(event: Any) -> Payload:
    payload = VENDOR_INFO.view(event, Payload.of)
    webhook_id = event.header("webhook-id")
    payload.webhook_id = webhook_id if webhook_id is not None else event.header("svix-id")
    return payload
