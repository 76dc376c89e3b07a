"""Housecall Pro (``vendor = "housecall-pro"``): the full record in an
envelope, under the key named by the event's first part (``job.*`` ->
``job``), or under ``data.<key>``, or in ``data`` (the other envelope)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, TypeVar

from ._shape import Id, ShapeError, Vendor, items, obj, opt, req, trimmed

VENDOR = "housecall-pro"
VENDOR_INFO = Vendor(
    VENDOR,
    "Housecall Pro",
    '{"event":"job.completed","event_occurred_at":"...","company_id":"...","job":{...}} or '
    '{"id":"...","event":"job.completed","created_at":"...","data":{...}}',
)
T = TypeVar("T")


@dataclass
class Customer:
    """A customer (in full for ``customer.*``, embedded in jobs and invoices)."""

    raw: dict
    id: Optional[str]
    first_name: Optional[str]
    last_name: Optional[str]
    company: Optional[str]
    email: Optional[str]
    mobile_number: Optional[str]

    @classmethod
    def of(cls, raw: Any) -> "Customer":
        raw = obj(raw, "a customer object")
        return cls(
            raw,
            *(opt(raw, k, "str") for k in ("id", "first_name", "last_name", "company", "email", "mobile_number")),
        )

    def display_name(self) -> Optional[str]:
        """``first last`` (trimmed; either may be missing), else ``company``; None without either."""
        name = " ".join(p for p in (trimmed(self.first_name), trimmed(self.last_name)) if p)
        return name or trimmed(self.company) or None


def _customer(raw: dict) -> Optional[Customer]:
    return None if raw.get("customer") is None else Customer.of(raw["customer"])


@dataclass
class LineItem:
    raw: dict
    id: Optional[str]
    name: Optional[str]
    quantity: Optional[float]
    #: Price of one, cents.
    unit_price: Optional[int]

    @classmethod
    def of(cls, raw: Any) -> "LineItem":
        raw = obj(raw, "a line item object")
        return cls(raw, opt(raw, "id", "str"), opt(raw, "name", "str"), opt(raw, "quantity", "num"), opt(raw, "unit_price", "int"))


@dataclass
class Job:
    """A job record (amounts in cents)."""

    raw: dict
    id: str
    invoice_number: Optional[Id]
    description: Optional[str]
    work_status: Optional[str]
    total_amount: Optional[int]
    outstanding_balance: Optional[int]
    customer: Optional[Customer]
    line_items: List[LineItem]
    created_at: Optional[str]
    updated_at: Optional[str]

    @classmethod
    def of(cls, raw: dict) -> "Job":
        return cls(
            raw,
            req(raw, "id", "str"),
            opt(raw, "invoice_number", "id"),
            opt(raw, "description", "str"),
            opt(raw, "work_status", "str"),
            opt(raw, "total_amount", "int"),
            opt(raw, "outstanding_balance", "int"),
            _customer(raw),
            items(raw, "line_items", LineItem.of),
            opt(raw, "created_at", "str"),
            opt(raw, "updated_at", "str"),
        )


@dataclass
class Invoice:
    """An invoice record (amounts in cents)."""

    raw: dict
    id: str
    invoice_number: Optional[Id]
    job_id: Optional[str]
    amount: Optional[int]
    status: Optional[str]
    paid_at: Optional[str]
    customer: Optional[Customer]

    @classmethod
    def of(cls, raw: dict) -> "Invoice":
        return cls(
            raw,
            req(raw, "id", "str"),
            opt(raw, "invoice_number", "id"),
            opt(raw, "job_id", "str"),
            opt(raw, "amount", "int"),
            opt(raw, "status", "str"),
            opt(raw, "paid_at", "str"),
            _customer(raw),
        )


@dataclass
class Envelope:
    """A Housecall Pro webhook envelope."""

    raw: dict
    #: ``job.completed``, ``customer.updated``, ...
    event: str
    event_occurred_at: Optional[str]
    company_id: Optional[str]
    #: The envelope id (second envelope).
    id: Optional[Id]
    created_at: Optional[str]
    #: The record of the second envelope, as sent.
    data: Any

    @classmethod
    def of(cls, raw: Any) -> "Envelope":
        raw = obj(raw, "a Housecall Pro envelope object")
        return cls(
            raw,
            req(raw, "event", "str"),
            opt(raw, "event_occurred_at", "str"),
            opt(raw, "company_id", "str"),
            opt(raw, "id", "id"),
            opt(raw, "created_at", "str"),
            raw.get("data"),
        )

    def record_type(self) -> str:
        """The event's first part: ``job`` for ``job.appointment.rescheduled``."""
        return self.event.split(".", 1)[0]

    def occurred_at(self) -> Optional[str]:
        """``event_occurred_at``, else ``created_at``."""
        return self.event_occurred_at if self.event_occurred_at is not None else self.created_at

    def record(self) -> dict:
        """The record as sent: under the event's first part, else ``data.<part>``, else ``data``."""
        return self.record_under(self.record_type())

    def record_under(self, key: str) -> dict:
        data = self.data if isinstance(self.data, dict) else None
        for candidate in (self.raw.get(key), data.get(key) if data else None, data):
            if isinstance(candidate, dict):
                return candidate
        raise VENDOR_INFO.error(f"`{self.event}` body has no `{key}` object (nor `data`)")

    def _typed(self, kind: str, read: Callable[[dict], T]) -> T:
        if self.record_type() != kind:
            raise VENDOR_INFO.error(f"`{self.event}` carries a {self.record_type()} record, not a {kind}")
        record = self.record()
        try:
            return read(record)
        except ShapeError as e:
            raise VENDOR_INFO.error(f"`{self.event}` record does not have the expected shape: {e}") from None

    def job(self) -> Job:
        """The job of a ``job.*`` event."""
        return self._typed("job", Job.of)

    def invoice(self) -> Invoice:
        """The invoice of an ``invoice.*`` event."""
        return self._typed("invoice", Invoice.of)

    def customer(self) -> Customer:
        """The customer of a ``customer.*`` event."""
        return self._typed("customer", Customer.of)


def parse(body: Any) -> Envelope:
    """Reads a Housecall Pro body without checking the event's vendor."""
    return VENDOR_INFO.parse(body, Envelope.of)


def view(event: Any) -> Envelope:
    return VENDOR_INFO.view(event, Envelope.of)
