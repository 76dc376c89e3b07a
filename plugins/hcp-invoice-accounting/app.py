"""Housecall Pro -> accounting: a completed job becomes an invoice, a paid
invoice becomes a payment, each one API call with an idempotency key.

Config: ``accounting_url`` (base URL of the accounting API, required),
``currency`` (default ``USD``).
"""

from typing import Any, Dict, Optional

import fieldhook
from fieldhook import Event, Request, config, deliver, drop, log
from fieldhook.vendors.housecall_pro import Customer, Invoice, Job

KINDS = ("invoice.paid", "job.completed")


class Handler(fieldhook.Plugin):
    def accepts(self, event: Event) -> bool:
        return event.kind in KINDS

    def decide(self, event: Event) -> fieldhook.Decision:
        # The record sits under `job`/`invoice`, `data.<key>` or `data`; the
        # view says what is missing when it is not there.
        envelope = event.housecall_pro()
        base = config.require("accounting_url").rstrip("/")
        currency = config.get("currency", "USD")
        if event.kind == "job.completed":
            job = envelope.job()
            record_id, path, payload = job.id, "invoices", invoice_for_job(job, currency)
        else:
            invoice = envelope.invoice()
            record_id, payload = invoice.id, payment_for_invoice(invoice, currency)
            if payload["amount_cents"] is None:
                return drop(f"invoice {invoice.id} paid without an amount")
            path = "payments"
        payload["occurred_at"] = envelope.occurred_at() or event.occurred_at
        payload["fieldhook_event_id"] = event.id
        # Stable across Housecall Pro redeliveries, even ones outside the
        # host's dedupe window: one vendor event, one accounting entry.
        key = f"hcp:{envelope.company_id or event.source}:{event.kind}:{record_id}"
        log.info(f"{event.kind} {record_id} -> POST {path}")
        return deliver(Request.post(f"{base}/{path}").json(payload).idempotency_key(key))


def invoice_for_job(job: Job, currency: str) -> Dict[str, Any]:
    return {
        "type": "invoice",
        "external_id": job.id,
        "invoice_number": job.invoice_number,
        "customer": customer_of(job.customer),
        "total_cents": cents(job.raw, "total_amount", "total"),
        "currency": currency,
        "line_items": [
            {
                "name": item.name,
                "quantity": 1 if item.quantity is None else item.quantity,
                "unit_price_cents": item.unit_price,
            }
            for item in job.line_items
        ],
    }


def payment_for_invoice(invoice: Invoice, currency: str) -> Dict[str, Any]:
    return {
        "type": "payment",
        "external_id": invoice.id,
        "invoice_number": invoice.invoice_number,
        "job_id": invoice.job_id,
        "customer": customer_of(invoice.customer),
        "amount_cents": cents(invoice.raw, "amount", "paid_amount", "total_amount", "total"),
        "currency": currency,
        "paid_at": invoice.paid_at,
    }


def customer_of(customer: Optional[Customer]) -> Optional[Dict[str, Any]]:
    if customer is None:
        return None
    return {"id": customer.id, "name": customer.display_name(), "email": customer.email}


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
