"""ServiceTitan (``vendor = "servicetitan"``), including Scheduling Pro.
The envelope is not published; integrators read ``eventId``, ``eventType``,
``tenantId`` and ``data``. Scheduling Pro sends *Session Completed* and
*Qualified Abandoned Session* (:meth:`Envelope.scheduling_pro`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from ._shape import Id, ShapeError, Vendor, first_string, obj, opt, trimmed

VENDOR = "servicetitan"
VENDOR_INFO = Vendor(VENDOR, "ServiceTitan", '{"eventId":"...","eventType":"job.completed","tenantId":123,"data":{"id":...}}')

SESSION_COMPLETED = "SessionCompleted"
QUALIFIED_ABANDONED_SESSION = "QualifiedAbandonedSession"


@dataclass
class Contact:
    """Contact details left in a session."""

    raw: dict
    first_name: Optional[str]
    last_name: Optional[str]
    name: Optional[str]
    email: Optional[str]
    phone: Optional[str]
    zip: Optional[str]

    @classmethod
    def of(cls, raw: Any) -> "Contact":
        raw = obj(raw, "a contact object")
        return cls(raw, *(opt(raw, k, "str") for k in ("firstName", "lastName", "name", "email", "phone", "zip")))

    def display_name(self) -> Optional[str]:
        """``name``, else ``firstName lastName`` (either may be missing); None without a name."""
        if trimmed(self.name):
            return self.name
        return " ".join(p for p in (trimmed(self.first_name), trimmed(self.last_name)) if p) or None


@dataclass
class Session:
    """A Scheduling Pro session (the fields integrators have seen; the rest is in ``raw``)."""

    raw: dict
    #: The session id: ``sessionId``, else ``id``.
    id: Optional[Id]
    #: The job the booking created (Session Completed).
    job_id: Optional[Id]
    #: Contact details: ``customer``, else ``contact``.
    contact: Optional[Contact]
    service_name: Optional[str]
    campaign: Optional[str]
    notes: Optional[str]

    @classmethod
    def of(cls, raw: Any) -> "Session":
        raw = obj(raw, "an object")
        session_id = opt(raw, "sessionId", "id")
        contact = raw.get("customer") if raw.get("customer") is not None else raw.get("contact")
        return cls(
            raw,
            session_id if session_id is not None else opt(raw, "id", "id"),
            opt(raw, "jobId", "id"),
            None if contact is None else Contact.of(contact),
            opt(raw, "serviceName", "str"),
            opt(raw, "campaign", "str"),
            opt(raw, "notes", "str"),
        )

    def require_id(self) -> Id:
        """The session id; an error naming both fields when neither is given."""
        if self.id is None:
            raise VENDOR_INFO.error("Scheduling Pro session has no `data.sessionId` or `data.id`")
        return self.id


@dataclass
class Envelope:
    """A ServiceTitan webhook envelope."""

    raw: dict
    event_id: Optional[Id]
    #: ``eventType``, else ``eventName``, ``event``, ``type``.
    event_type: str
    tenant_id: Optional[Id]
    #: The first of ``occurredAt``, ``occurredOn``, ``createdOn``, ``timestamp`` that is a string.
    occurred_at: Optional[str]
    data: Any

    @classmethod
    def of(cls, raw: Any) -> "Envelope":
        raw = obj(raw, "an object")
        event_id = opt(raw, "eventId", "id")
        tenant_id = opt(raw, "tenantId", "id")
        event_type = first_string(raw, "eventType", "eventName", "event", "type")
        if event_type is None:
            raise VENDOR_INFO.error("body has no `eventType` (nor `eventName`, `event`, `type`)")
        occurred_at = first_string(raw, "occurredAt", "occurredOn", "createdOn", "timestamp")
        return cls(raw, event_id, event_type, tenant_id, occurred_at, raw.get("data"))

    def scheduling_pro(self) -> Optional[str]:
        """``SESSION_COMPLETED``, ``QUALIFIED_ABANDONED_SESSION`` (names matched loosely), or None."""
        squashed = re.sub(r"[^a-z0-9]", "", self.event_type.lower())
        if squashed in ("sessioncompleted", "schedulingsessioncompleted"):
            return SESSION_COMPLETED
        if squashed in (
            "qualifiedabandonedsession",
            "schedulingqualifiedabandonedsession",
            "sessionabandoned",
            "schedulingsessionabandoned",
        ):
            return QUALIFIED_ABANDONED_SESSION
        return None

    def data_id(self) -> Optional[Id]:
        """``data.id`` when it is an id."""
        v = self.data.get("id") if isinstance(self.data, dict) else None
        return v if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) else None

    def require_data(self) -> Any:
        if self.data is None:
            raise VENDOR_INFO.error(f"`{self.event_type}` body has no `data`")
        return self.data

    def session(self) -> Session:
        """The Scheduling Pro session in ``data``; an error for other events."""
        if self.scheduling_pro() is None:
            raise VENDOR_INFO.error(
                f"`{self.event_type}` is not a Scheduling Pro event (Session Completed, Qualified Abandoned Session)"
            )
        data = self.require_data()
        try:
            return Session.of(data)
        except ShapeError as e:
            raise VENDOR_INFO.error(f"`{self.event_type}` data does not have the expected shape: {e}") from None


def parse(body: Any) -> Envelope:
    """Reads a ServiceTitan body without checking the event's vendor."""
    return VENDOR_INFO.parse(body, Envelope.of)


def view(event: Any) -> Envelope:
    return VENDOR_INFO.view(event, Envelope.of)
