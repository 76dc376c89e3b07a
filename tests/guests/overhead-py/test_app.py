"""PYTHONPATH=guest-sdk-py python3 -m unittest discover -s tests/guests/overhead-py -t tests/guests/overhead-py"""

import unittest
from pathlib import Path

from fieldhook.testing import FakeHost, event

import app

SAMPLE = (Path(__file__).resolve().parents[3] / "plugins/hcp-invoice-accounting/samples/job-completed.json").read_text()


class OverheadTest(unittest.TestCase):
    def host(self) -> FakeHost:
        return FakeHost(config={"endpoint": "http://127.0.0.1:9/out"})

    def test_a_completed_job_becomes_the_record_overhead_rust_makes(self):
        result = self.host().run(app.Handler(), event(id="evt_1", kind="job.completed", body=SAMPLE))
        self.assertEqual(result.type, "deliver")
        (request,) = result.requests
        self.assertEqual(request.url, "http://127.0.0.1:9/out")
        self.assertEqual(request.idempotency_key, "overhead:evt_1")
        self.assertEqual(
            request.json,
            {
                "external_id": "job_7f3e",
                "invoice_number": "1042",
                "customer": "Dana Reyes",
                "total_cents": 24500,
                "occurred_at": "2026-11-20T15:04:05Z",
                "event_id": "evt_1",
            },
        )

    def test_other_kinds_are_skipped_without_reading_the_body(self):
        ev = event(kind="job.updated", body=SAMPLE)
        self.assertEqual(self.host().run(app.Handler(), ev).type, "skip")
        self.assertEqual(ev.reads, ["kind"])

    def test_a_body_without_a_job_maps_to_nulls_as_in_rust(self):
        result = self.host().run(app.Handler(), event(kind="job.completed", body={"job": "x"}))
        self.assertEqual(
            result.requests[0].json,
            {"external_id": None, "invoice_number": None, "customer": "", "total_cents": None, "occurred_at": None, "event_id": "evt_test"},
        )


if __name__ == "__main__":
    unittest.main()
