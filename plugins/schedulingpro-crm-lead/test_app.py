"""PYTHONPATH=../../guest-sdk-py python3 -m unittest (in this directory)"""

import json
import unittest
from pathlib import Path

from fieldhook.testing import FakeHost, event, event_from_sample

import app

SAMPLES = Path(__file__).resolve().parent / "samples"
CRM = "https://crm.example.com/api"


def sp(kind: str, body) -> object:
    return event(source="scheduling-pro", vendor="servicetitan", kind=kind, body=body)


class AppTest(unittest.TestCase):
    def host(self) -> FakeHost:
        return FakeHost(config={"crm_url": CRM})

    def test_an_abandoned_session_opens_a_lead(self):
        host = self.host()
        result = host.run(app.Handler(), event_from_sample(str(SAMPLES / "qualified-abandoned-session.event.json")))
        self.assertEqual(result.type, "deliver")
        (request,) = result.requests
        self.assertEqual((request.method, request.url), ("POST", f"{CRM}/leads"))
        self.assertEqual(request.idempotency_key, "sp-lead-create:schedulingpro:42:sess_78")
        lead = request.json
        self.assertEqual(lead["external_id"], "schedulingpro:42:sess_78")
        self.assertEqual((lead["status"], lead["source"]), ("open", "Scheduling Pro"))
        self.assertEqual(
            lead["contact"],
            {"name": "Sam Ortiz", "email": "sam.ortiz@example.com", "phone": "+15125550142", "zip": "78701"},
        )
        self.assertEqual((lead["interest"], lead["campaign"]), ("Water heater repair", "fall-promo"))
        self.assertEqual(lead["abandoned_at"], "2026-11-21T18:02:11Z")

    def test_a_completed_session_closes_the_lead(self):
        result = self.host().run(app.Handler(), sp("scheduling.session_completed", (SAMPLES / "session-completed.json").read_text()))
        (request,) = result.requests
        self.assertEqual((request.method, request.url), ("PATCH", f"{CRM}/leads/schedulingpro%3A42%3Asess_78"))
        self.assertEqual(request.idempotency_key, "sp-lead-close:schedulingpro:42:sess_78")
        self.assertEqual(request.json["job_id"], 5512093)
        self.assertEqual(request.json["closed_at"], "2026-11-21T18:40:55Z")

    def test_a_session_without_email_or_phone_is_dropped(self):
        body = {"eventType": "Qualified Abandoned Session", "tenantId": 42, "data": {"id": "sess_99", "customer": {"firstName": "Anon"}}}
        result = self.host().run(app.Handler(), sp("scheduling.session_abandoned", body))
        self.assertEqual((result.type, result.reason), ("drop", "session sess_99: no email or phone to follow up"))

    def test_other_spellings_of_the_contact_are_read(self):
        body = {"eventType": "Qualified Abandoned Session", "data": {"sessionId": 7, "fullName": "Lee", "phoneNumber": "+1555"}}
        lead = self.host().run(app.Handler(), sp("scheduling.session_abandoned", body)).requests[0].json
        self.assertEqual(lead["external_id"], "schedulingpro:tenant:7")
        self.assertEqual(lead["contact"], {"name": "Lee", "email": None, "phone": "+1555", "zip": None})

    def test_a_session_without_an_id_fails_for_good(self):
        body = json.dumps({"eventType": "Session Completed", "data": {"customer": {}}})
        result = self.host().run(app.Handler(), sp("scheduling.session_completed", body))
        self.assertEqual((result.type, result.retryable), ("error", False))
        self.assertIn("no `data.sessionId` or `data.id`", result.message)

    def test_other_kinds_are_skipped(self):
        ev = sp("job.completed", "{}")
        self.assertEqual(self.host().run(app.Handler(), ev).type, "skip")
        self.assertEqual(ev.reads, ["kind"])


if __name__ == "__main__":
    unittest.main()
