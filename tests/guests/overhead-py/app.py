"""Benchmark fixture: the same filter/map logic as overhead-rust."""

from typing import Any

import fieldhook
from fieldhook import Event, Request, config, deliver


def field(value: Any, key: str) -> Any:
    """``value[key]`` as serde_json indexes: None unless an object has it."""
    return value.get(key) if isinstance(value, dict) else None


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class Handler(fieldhook.Plugin):
    def accepts(self, event: Event) -> bool:
        return event.kind == "job.completed"

    def decide(self, event: Event) -> fieldhook.Decision:
        body = event.json()
        job = field(body, "job")
        customer = field(job, "customer")
        name = f"{text(field(customer, 'first_name'))} {text(field(customer, 'last_name'))}".strip()
        record = {
            "external_id": field(job, "id"),
            "invoice_number": field(job, "invoice_number"),
            "customer": name,
            "total_cents": field(job, "total_amount"),
            "occurred_at": field(body, "event_occurred_at"),
            "event_id": event.id,
        }
        request = Request.post(config.require("endpoint")).json(record)
        return deliver(request.idempotency_key(f"overhead:{event.id}"))
