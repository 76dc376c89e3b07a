"""Scheduling Pro (ServiceTitan) abandoned booking -> CRM lead.

A Qualified Abandoned Session (someone left the booking flow after giving
enough contact details) creates a lead; a Session Completed (the booking went
through) closes it. The lead's external id is derived from the tenant and the
session id, so the close finds the lead the abandon created.

Config: ``crm_url`` (base URL of the CRM API, required), ``lead_source``
(default ``Scheduling Pro``).
"""

from typing import Any, Dict, Optional
from urllib.parse import quote

import fieldhook
from fieldhook import Event, Request, config, deliver, drop, log

ABANDONED = "scheduling.session_abandoned"
COMPLETED = "scheduling.session_completed"


class Handler(fieldhook.Plugin):
    def accepts(self, event: Event) -> bool:
        return event.kind in (ABANDONED, COMPLETED)

    def decide(self, event: Event) -> fieldhook.Decision:
        # The envelope and the session in `data`; the view's errors name
        # what is missing (no `data`, no `data.sessionId` or `data.id`).
        envelope = event.servicetitan()
        session = envelope.session()
        session_id = session.require_id()
        data = session.raw
        tenant = envelope.tenant_id if envelope.tenant_id is not None else "tenant"
        external_id = f"schedulingpro:{tenant}:{session_id}"
        occurred_at = event.occurred_at or envelope.occurred_at
        base = config.require("crm_url").rstrip("/")
        lead_url = f"{base}/leads/{quote(external_id, safe='')}"

        if event.kind == ABANDONED:
            contact = contact_of(data)
            if not (contact["email"] or contact["phone"]):
                return drop(f"session {session_id}: no email or phone to follow up")
            lead = {
                "external_id": external_id,
                "status": "open",
                "source": config.get("lead_source", "Scheduling Pro"),
                "contact": contact,
                "interest": first(data, "serviceName", "jobType", "categoryName", "service"),
                "notes": first(data, "notes", "summary", "comments"),
                "campaign": first(data, "campaign", "campaignName", "utmCampaign"),
                "abandoned_at": occurred_at,
                "fieldhook_event_id": event.id,
            }
            log.info(f"session {session_id} abandoned -> lead {external_id}")
            request = Request.post(f"{base}/leads").json(lead)
            return deliver(request.idempotency_key(f"sp-lead-create:{external_id}"))

        close = {
            "status": "closed",
            "outcome": "booked",
            "job_id": first(data, "jobId", "job_id", "bookingId"),
            "closed_at": occurred_at,
            "fieldhook_event_id": event.id,
        }
        log.info(f"session {session_id} completed -> close lead {external_id}")
        request = Request.patch(lead_url).json(close)
        return deliver(request.idempotency_key(f"sp-lead-close:{external_id}"))


def first(record: Dict[str, Any], *keys: str) -> Optional[Any]:
    for key in keys:
        value = record.get(key)
        if value not in (None, ""):
            return value
    return None


def contact_of(data: Dict[str, Any]) -> Dict[str, Any]:
    """Contact details from ``data.customer``/``data.contact`` or ``data``
    itself (field names are not published; the usual spellings are tried)."""
    source = data
    for key in ("customer", "contact"):
        if isinstance(data.get(key), dict):
            source = data[key]
            break
    name = first(source, "name", "fullName")
    if name is None:
        parts = [first(source, "firstName", "first_name"), first(source, "lastName", "last_name")]
        name = " ".join(p for p in parts if p) or None
    return {
        "name": name,
        "email": first(source, "email", "emailAddress"),
        "phone": first(source, "phone", "phoneNumber", "mobilePhone"),
        "zip": first(source, "zip", "zipCode", "postalCode"),
    }
