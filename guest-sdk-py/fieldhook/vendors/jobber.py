"""Jobber (``vendor = "jobber"``): thin notices naming a topic and an item
(fetch it over Jobber's GraphQL API through the host)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ._shape import Vendor, obj, opt, req

VENDOR = "jobber"
VENDOR_INFO = Vendor(
    VENDOR,
    "Jobber",
    '{"data":{"webHookEvent":{"topic":"JOB_UPDATE","appId":"...","accountId":"...","itemId":"...","occurredAt":"..."}}}',
)


@dataclass
class Notice:
    """The ``data.webHookEvent`` object."""

    raw: dict
    #: ``JOB_UPDATE``, ``CLIENT_CREATE``, ...
    topic: str
    app_id: Optional[str]
    account_id: Optional[str]
    item_id: str
    occurred_at: Optional[str]

    @classmethod
    def of(cls, raw: Any) -> "Notice":
        raw = obj(raw, "an object")
        hook = req(req(raw, "data", "obj"), "webHookEvent", "obj")
        return cls(
            raw,
            req(hook, "topic", "str"),
            opt(hook, "appId", "str"),
            opt(hook, "accountId", "str"),
            req(hook, "itemId", "str"),
            opt(hook, "occurredAt", "str"),
        )

    def entity_type(self) -> str:
        """``job`` for ``JOB_UPDATE``, ``payment_record`` for ``PAYMENT_RECORD_CREATE``."""
        entity, sep, _ = self.topic.rpartition("_")
        return (entity if sep and entity else self.topic).lower()

    def action(self) -> str:
        """``UPDATE`` for ``JOB_UPDATE``."""
        return self.topic.rpartition("_")[2]


def parse(body: Any) -> Notice:
    return VENDOR_INFO.parse(body, Notice.of)


def view(event: Any) -> Notice:
    return VENDOR_INFO.view(event, Notice.of)
