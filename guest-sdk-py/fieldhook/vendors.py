"""Typed views of the vendors' webhook payloads (see docs/vendors/).

``TypedDict`` only: they document what ``event.json()`` holds and let a type
checker follow it; nothing is validated at run time.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TypedDict, Union


class ServiceTradeEntity(TypedDict, total=False):
    type: str
    id: Union[int, str]
    uri: str


class ServiceTradeFieldChange(TypedDict):
    field: str
    oldValue: Any
    newValue: Any


class ServiceTradeChange(TypedDict, total=False):
    action: str  # created | updated | deleted
    timestamp: int
    userId: int
    entity: ServiceTradeEntity
    changeset: List[ServiceTradeFieldChange]


class ServiceTradeMessage(TypedDict):
    """One message batches many changes; the host makes one event per item."""

    messageId: str
    timestamp: str
    data: List[ServiceTradeChange]


class HousecallProEnvelope(TypedDict, total=False):
    """The record sits under the event's first part (``job.*`` -> ``job``)."""

    event: str
    event_occurred_at: str
    company_id: str
    job: Dict[str, Any]
    invoice: Dict[str, Any]
    customer: Dict[str, Any]


class ServiceTitanEnvelope(TypedDict, total=False):
    """ServiceTitan / Scheduling Pro (envelope not published)."""

    eventId: str
    eventType: str
    tenantId: Union[int, str]
    data: Dict[str, Any]


def housecall_pro_record(body: HousecallProEnvelope, kind: str) -> Optional[Dict[str, Any]]:
    """The record of a Housecall Pro envelope: under the kind's first part,
    or under ``data`` (the other documented shape)."""
    key = kind.split(".", 1)[0]
    record = body.get(key)  # type: ignore[misc]
    if isinstance(record, dict):
        return record
    data = body.get("data")  # type: ignore[misc]
    if isinstance(data, dict):
        inner = data.get(key)
        return inner if isinstance(inner, dict) else data
    return None
