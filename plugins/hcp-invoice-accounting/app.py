"""Housecall Pro -> accounting: a completed job becomes an invoice, a paid
invoice becomes a payment, each one API call with an idempotency key.

Config: ``accounting_url`` (base URL of the accounting API, required),
``currency`` (default ``USD``).
"""

from typing import Any, Dict, Optional

import fieldhook
from fieldhook import Event, PluginError, Request, config, deliver, drop, log
from fieldhook.vendors import HousecallProEnvelope, housecall_pro_record

KINDS = ("invoice.paid", "job.completed")


class Handler(fieldhook.Plugin):
    def accepts(self, event: Event) -> bool:
        return event.kind in KINDS

    def decide(self, event: Event) -> fieldhook.Decision:
        body: HousecallProEnvelope = event.json()
        record = housecall_pro_record(body, event.kind)
        if record is None or record.get("id") is None:
            raise PluginError.fatal(f"{event.kind}: no record with an `id` in the envelope")
        base = config.require("accounting_url").rstrip("/")
        currency = config.get("currency", "USD")
        if event.kind == "job.completed":
            path, payload = "invoices", invoice_for_job(record, currency)
        else:
            payload = payment_for_invoice(record, currency)
            if payload["amount_cents"] is None:
                return drop(f"invoice {record['id']} paid without an amount")
            path = "payments"
        payload["occurred_at"] = body.get("event_occurred_at") or event.occurred_at
        payload["fieldhook_event_id"] = event.id
        # Stable across Housecall Pro redeliveries, even ones outside the
        # host's dedupe window: one vendor event, one accounting entry.
        key = f"hcp:{body.get('company_id', event.source)}:{event.kind}:{record['id']}"
        log.info(f"{event.kind} {record['id']} -> POST {path}")
        return deliver(Request.post(f"{base}/{path}").json(payload).idempotency_key(key))


def invoice_for_job(job: Dict[str, Any], currency: str) -> Dict[str, Any]:
    return {
        "type": "invoice",
        "external_id": job["id"],
        "invoice_number": job.get("invoice_number"),
        "customer": customer_of(job.get("customer")),
        "total_cents": cents(job, "total_amount", "total"),
        "currency": currency,
        "line_items": [
            {
                "name": item.get("name"),
                "quantity": item.get("quantity", 1),
                "unit_price_cents": item.get("unit_price"),
            }
            for item in job.get("line_items") or []
            if isinstance(item, dict)
        ],
    }


def payment_for_invoice(invoice: Dict[str, Any], currency: str) -> Dict[str, Any]:
    return {
        "type": "payment",
        "external_id": invoice["id"],
        "invoice_number": invoice.get("invoice_number"),
        "job_id": invoice.get("job_id"),
        "customer": customer_of(invoice.get("customer")),
        "amount_cents": cents(invoice, "amount", "paid_amount", "total_amount", "total"),
        "currency": currency,
        "paid_at": invoice.get("paid_at"),
    }


def customer_of(customer: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if not isinstance(customer, dict):
        return None
    name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p)
    return {
        "id": customer.get("id"),
        "name": name or customer.get("company") or None,
        "email": customer.get("email"),
    }


def cents(record: Dict[str, Any], *keys: str) -> Optional[int]:
    """Housecall Pro amounts are integer cents; the first key present wins."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    return None
