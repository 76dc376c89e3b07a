"""Benchmark fixture: the same filter/map logic as overhead-rust."""

import fieldhook
from fieldhook import Event, Request, config, deliver


class Handler(fieldhook.Plugin):
    def accepts(self, event: Event) -> bool:
        return event.kind == "job.completed"

    def decide(self, event: Event) -> fieldhook.Decision:
        body = event.json()
        job = body.get("job") or {}
        customer = job.get("customer") or {}
        name = f"{customer.get('first_name') or ''} {customer.get('last_name') or ''}".strip()
        record = {
            "external_id": job.get("id"),
            "invoice_number": job.get("invoice_number"),
            "customer": name,
            "total_cents": job.get("total_amount"),
            "occurred_at": body.get("event_occurred_at"),
            "event_id": event.id,
        }
        request = Request.post(config.require("endpoint")).json(record)
        return deliver(request.idempotency_key(f"overhead:{event.id}"))
