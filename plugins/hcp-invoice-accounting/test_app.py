"""PYTHONPATH=../../guest-sdk-py python3 -m unittest (in this directory)"""

import unittest
from pathlib import Path

from fieldhook.testing import FakeHost, event, event_from_sample

import app

SAMPLES = Path(__file__).resolve().parent / "samples"
BOOKS = "https://books.example.com/api/v1"


def hcp(kind: str, body) -> object:
    return event(source="hcp", vendor="housecall-pro", kind=kind, body=body)


class AppTest(unittest.TestCase):
    def host(self, **config) -> FakeHost:
        return FakeHost(config={"accounting_url": BOOKS, **config})

    def test_a_completed_job_becomes_an_invoice(self):
        host = self.host()
        result = host.run(app.Handler(), hcp("job.completed", (SAMPLES / "job-completed.json").read_text()))
        self.assertEqual(result.type, "deliver")
        (request,) = result.requests
        self.assertEqual((request.method, request.url), ("POST", f"{BOOKS}/invoices"))
        self.assertEqual(request.idempotency_key, "hcp:233b75f9-4b4f-4a83-b21b-c1ed9e571daa:job.completed:job_7f3e")
        body = request.json
        self.assertEqual(body["type"], "invoice")
        self.assertEqual(body["external_id"], "job_7f3e")
        self.assertEqual(body["total_cents"], 24500)
        self.assertEqual(body["currency"], "USD")
        self.assertEqual(body["customer"], {"id": "cus_d892", "name": "Dana Reyes", "email": "dana@example.com"})
        self.assertEqual(body["line_items"][1], {"name": "Filter", "quantity": 2, "unit_price_cents": 3000})
        self.assertEqual(body["occurred_at"], "2026-11-20T15:04:05Z")
        self.assertEqual(host.logs, [("info", "job.completed job_7f3e -> POST invoices")])

    def test_a_paid_invoice_becomes_a_payment_in_the_configured_currency(self):
        result = self.host(currency="EUR").run(app.Handler(), event_from_sample(str(SAMPLES / "invoice-paid.event.json")))
        (request,) = result.requests
        self.assertEqual(request.url, f"{BOOKS}/payments")
        self.assertEqual(request.idempotency_key, "hcp:233b75f9-4b4f-4a83-b21b-c1ed9e571daa:invoice.paid:inv_51c0")
        body = request.json
        self.assertEqual((body["amount_cents"], body["currency"], body["job_id"]), (24500, "EUR", "job_7f3e"))
        self.assertEqual(body["paid_at"], "2026-11-21T09:29:41Z")
        self.assertEqual(body["fieldhook_event_id"], "evt_test")

    def test_the_data_envelope_and_fallback_amounts_are_read(self):
        body = {"id": "e1", "event": "invoice.paid", "created_at": "2026-01-02T03:04:05Z", "data": {"id": "inv_9", "total": 700}}
        result = self.host().run(app.Handler(), hcp("invoice.paid", body))
        self.assertEqual(result.requests[0].json["amount_cents"], 700)
        self.assertEqual(result.requests[0].json["occurred_at"], "2026-01-02T03:04:05Z")
        self.assertEqual(result.requests[0].idempotency_key, "hcp:hcp:invoice.paid:inv_9")

    def test_an_invoice_without_an_amount_is_dropped(self):
        body = {"event": "invoice.paid", "invoice": {"id": "inv_2"}}
        result = self.host().run(app.Handler(), hcp("invoice.paid", body))
        self.assertEqual((result.type, result.reason), ("drop", "invoice inv_2 paid without an amount"))

    def test_other_kinds_are_skipped_without_reading_the_body(self):
        ev = hcp("job.updated", "{}")
        self.assertEqual(self.host().run(app.Handler(), ev).type, "skip")
        self.assertEqual(ev.reads, ["kind"])

    def test_a_record_without_an_id_or_a_missing_url_fails_for_good(self):
        result = self.host().run(app.Handler(), hcp("job.completed", {"event": "job.completed", "job": {"total_amount": 1}}))
        self.assertEqual((result.type, result.retryable), ("error", False))
        self.assertIn("missing field `id`", result.message)
        result = FakeHost().run(app.Handler(), hcp("job.completed", (SAMPLES / "job-completed.json").read_text()))
        self.assertEqual(result.message, "config `accounting_url` is not set: add it under [config] in plugin.toml")
        result = self.host().run(app.Handler(), event(vendor="jobber", kind="job.completed", body="{}"))
        self.assertIn("not a Housecall Pro event", result.message)


if __name__ == "__main__":
    unittest.main()
