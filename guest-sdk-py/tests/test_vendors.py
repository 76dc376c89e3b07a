"""The Rust SDK's vendor tests (guest-sdk/src/vendors/), in Python."""

import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "guest-sdk-py"))

import fieldhook  # noqa: E402
from fieldhook import PluginError, drop  # noqa: E402
from fieldhook.testing import FakeHost, event  # noqa: E402
from fieldhook.vendors import housecall_pro, jobber, servicem8, servicetitan, standard_webhooks  # noqa: E402


def sample(plugin, name):
    return (ROOT / "plugins" / plugin / "samples" / name).read_text().strip()


def within(ev, fn):
    box = []

    class Probe(fieldhook.Plugin):
        def decide(self, e):
            box.append(fn(e))
            return drop("ok")

    result = FakeHost().run(Probe(), ev)
    if result.type == "error":
        raise PluginError(result.message, result.retryable)
    return box[0]


def frm(vendor, kind, body, **more):
    return event(vendor=vendor, kind=kind, body=body, **more)


class VendorTest(unittest.TestCase):
    def fails(self, says, ev, fn):
        with self.assertRaises(PluginError) as caught:
            within(ev, fn)
        self.assertFalse(caught.exception.retryable)
        self.assertIn(says, caught.exception.message)

    def test_an_event_of_another_vendor_is_refused_with_both_vendors_named(self):
        for view in ("housecall_pro", "jobber", "servicetrade", "servicetitan", "standard_webhooks"):
            self.fails("vendor `servicem8`", frm("servicem8", "job.updated", "{}"), lambda e: getattr(e, view)())
        self.fails(
            "event evt_test: not a ServiceM8 event: it arrived on source `test` of vendor `test`, not `servicem8`",
            event(kind="job.updated", body="{}"),
            lambda e: e.servicem8(),
        )

    # ---- Housecall Pro
    def test_housecall_pro_public_vector_and_records(self):
        body = '{"event":"customer.updated","event_occurred_at":"2026-07-24T05:38:14Z","company_id":"233b","customer":{"id":"cus_d892","first_name":"ZZ-Webhook","last_name":"Test-DELETE-ME"}}'
        env = within(frm("housecall-pro", "customer.updated", body), lambda e: e.housecall_pro())
        self.assertEqual((env.event, env.record_type(), env.occurred_at(), env.company_id), ("customer.updated", "customer", "2026-07-24T05:38:14Z", "233b"))
        self.assertEqual(env.customer().display_name(), "ZZ-Webhook Test-DELETE-ME")
        with self.assertRaises(PluginError) as caught:
            env.job()
        self.assertEqual(caught.exception.message, "Housecall Pro `customer.updated` carries a customer record, not a job")
        job = within(frm("housecall-pro", "job.completed", sample("hcp-invoice-accounting", "job-completed.json")), lambda e: e.housecall_pro().job())
        self.assertEqual((job.id, job.invoice_number, job.total_amount), ("job_7f3e", "1042", 24500))
        self.assertIsNotNone(job.customer.email)
        self.assertEqual(sum(li.unit_price * li.quantity for li in job.line_items), 24500)
        inv = housecall_pro.parse(sample("hcp-invoice-accounting", "invoice-paid.json")).invoice()
        self.assertEqual((inv.id, inv.job_id, inv.amount, inv.status, inv.paid_at), ("inv_51c0", "job_7f3e", 24500, "paid", "2026-11-21T09:29:41Z"))
        data = housecall_pro.parse('{"id":"whe_1","event":"invoice.paid","created_at":"2026-11-21T09:30:00Z","data":{"id":"inv_1","amount":100}}')
        self.assertEqual((data.id, data.occurred_at(), data.invoice().amount), ("whe_1", "2026-11-21T09:30:00Z", 100))
        self.assertEqual(housecall_pro.parse('{"event":"job.completed","data":{"job":{"id":"job_1"}}}').job().id, "job_1")
        self.assertEqual(housecall_pro.parse('{"event":"employee.created","employee":{"id":"pro_1"}}').record()["id"], "pro_1")

    def test_housecall_pro_customer_names_use_what_is_there(self):
        def name(c):
            return housecall_pro.Customer.of(c).display_name()

        self.assertEqual(name({"first_name": " Dana ", "last_name": None}), "Dana")
        self.assertEqual(name({"last_name": "Reyes"}), "Reyes")
        self.assertEqual(name({"first_name": "", "company": " Acme "}), "Acme")
        self.assertIsNone(name({"id": "cus_1"}))

    def test_housecall_pro_malformed_envelopes_say_what_is_missing(self):
        for body, says in (
            ('{"foo":"bar"}', "Housecall Pro body does not have the expected shape: missing field `event`"),
            ('{"event":"job.completed","company_id":"c"}', "Housecall Pro `job.completed` body has no `job` object (nor `data`)"),
            ('{"event":"job.completed","job":{"total_amount":1}}', "missing field `id`"),
            ('{"event":"job.completed","job":{"id":"j","total_amount":"lots"}}', '`job.completed` record does not have the expected shape: invalid type: string "lots", expected an integer'),
            ("{", "Housecall Pro body is not JSON"),
        ):
            self.fails(says, frm("housecall-pro", "job.completed", body), lambda e: e.housecall_pro().job())

    # ---- ServiceTrade
    def test_servicetrade_message_and_batch(self):
        msg = '{"messageId":"6f1d","timestamp":"1401833057","data":[{"action":"updated","timestamp":1401833052,"userId":1234,"entity":{"type":"appointment","id":34872,"uri":"https://api.servicetrade.com/api/appointment/34872"},"changeset":[{"field":"status","oldValue":"scheduled","newValue":"completed"}]}]}'
        m, c = within(frm("servicetrade", "appointment.updated", msg), lambda e: (e.servicetrade(), e.servicetrade().change_for(e)))
        self.assertEqual((m.message_id, m.timestamp_secs()), ("6f1d", 1401833057))
        self.assertTrue(c.is_("appointment", "UPDATED"))
        self.assertEqual((c.timestamp, c.user_id, c.entity.id, c.entity.uri), (1401833052, 1234, 34872, "https://api.servicetrade.com/api/appointment/34872"))
        self.assertEqual((c.field("status").old_str(), c.field("status").new_str(), c.field("total")), ("scheduled", "completed", None))
        batch = sample("servicetrade-job-status", "batch-mixed.json")

        def about(kind, id):
            return frm("servicetrade", kind, batch, entity={"kind": kind.split(".")[0], "id": id})

        job = within(about("job.updated", "88124"), lambda e: e.servicetrade().change_for(e))
        self.assertEqual((job.field("totalPrice").new_value, job.field("totalPrice").new_str()), (200, None))
        self.assertEqual(within(about("jobitem.updated", "5521"), lambda e: e.servicetrade().change_for(e)).entity.id, 5521)
        self.fails("names no entity", frm("servicetrade", "job.updated", batch), lambda e: e.servicetrade().change_for(e))
        self.fails("ServiceTrade message 6c1c1a7e-8f1e-4a57-9d7e-3b0a6f1f0002 has no change of job 1", about("job.updated", "1"), lambda e: e.servicetrade().change_for(e))
        for body, says in (
            ('{"timestamp":"1","data":[]}', "missing field `messageId`"),
            ('{"messageId":"m"}', "missing field `data`"),
            ('{"messageId":"m","data":[{"action":"updated"}]}', "missing field `entity`"),
            ('{"messageId":"m","data":[{"action":"updated","entity":{"type":"job","id":1.5}}]}', "expected an id"),
            ("", "ServiceTrade body is not JSON"),
        ):
            self.fails(says, frm("servicetrade", "job.updated", body), lambda e: e.servicetrade())

    # ---- ServiceM8
    def test_servicem8_object_and_event_webhooks(self):
        one = '{"object":"job","entry":[{"changed_fields":["status"],"time":"2015-01-01 00:00:00","uuid":"e3b0"}],"resource_url":"https://api.servicem8.com/api_1.0/job/e3b0.json"}'
        n, entry = within(frm("servicem8", "job.updated", one), lambda e: (e.servicem8(), e.servicem8().entry_for(e)))
        self.assertTrue(n.is_object_webhook())
        self.assertIsNone(n.event_name())
        self.assertTrue(entry.changed("status") and not entry.changed("total"))
        self.assertEqual(n.resource_url_for(entry), "https://api.servicem8.com/api_1.0/job/e3b0.json")
        two = '{"object":"JobActivity","entry":[{"changed_fields":["start_date"],"uuid":"u1"},{"changed_fields":[],"uuid":"u2"}],"resource_url":"https://api.servicem8.com/api_1.0/jobactivity/u2.json"}'

        def about(id):
            return frm("servicem8", "job.updated", two, entity={"kind": "jobactivity", "id": id})

        n, first = within(about("u1"), lambda e: (e.servicem8(), e.servicem8().entry_for(e)))
        self.assertEqual(n.resource_url_for(first), "https://api.servicem8.com/api_1.0/jobactivity/u1.json")
        self.fails("names no entity", frm("servicem8", "job.updated", two), lambda e: e.servicem8().entry_for(e))
        self.fails("ServiceM8 notice has no entry with uuid `u9`", about("u9"), lambda e: e.servicem8().entry_for(e))
        ev = servicem8.parse('{"eventName":"job.completed","data":{"uuid":"j-9"}}')
        self.assertEqual((ev.event_name(), ev.data["uuid"]), ("job.completed", "j-9"))
        for body, says in (
            ('{"object":"job","resource_url":"x"}', "object webhook has no `entry`"),
            ('{"entry":[{"uuid":"a"}]}', "object webhook has no `object`"),
            ('{"foo":"bar"}', "neither an object webhook"),
            ('{"object":"job","entry":[{"time":"2015-01-01 00:00:00"}]}', "missing field `uuid`"),
            ("mode=subscribe&challenge=x", "ServiceM8 body is not JSON"),
        ):
            self.fails(says, frm("servicem8", "job.updated", body), lambda e: e.servicem8())

    # ---- ServiceTitan / Scheduling Pro
    def test_servicetitan_envelopes_and_sessions(self):
        env = within(frm("servicetitan", "job.completed", '{"eventId":"8d9f","eventType":"job.completed","tenantId":123456789,"data":{"id":98765}}'), lambda e: e.servicetitan())
        self.assertEqual((env.event_type, env.event_id, env.tenant_id, env.data_id(), env.scheduling_pro()), ("job.completed", "8d9f", 123456789, 98765, None))
        abandoned = servicetitan.parse(sample("schedulingpro-crm-lead", "qualified-abandoned-session.json"))
        self.assertEqual((abandoned.scheduling_pro(), abandoned.occurred_at), (servicetitan.QUALIFIED_ABANDONED_SESSION, "2026-11-21T18:02:11Z"))
        s = abandoned.session()
        self.assertEqual((s.require_id(), s.service_name, s.campaign), ("sess_78", "Water heater repair", "fall-promo"))
        self.assertEqual((s.contact.display_name(), s.contact.email, s.contact.phone, s.contact.zip), ("Sam Ortiz", "sam.ortiz@example.com", "+15125550142", "78701"))
        done = servicetitan.parse(sample("schedulingpro-crm-lead", "session-completed.json"))
        self.assertEqual((done.scheduling_pro(), done.session().job_id), (servicetitan.SESSION_COMPLETED, 5512093))
        for name, expected in (("Session Completed", "SessionCompleted"), ("SESSION_COMPLETED", "SessionCompleted"), ("scheduling.session_abandoned", "QualifiedAbandonedSession"), ("Job Booked", None)):
            self.assertEqual(servicetitan.parse({"eventType": name}).scheduling_pro(), expected, name)
        by_type = servicetitan.parse('{"type":"Session Completed","timestamp":"t"}')
        self.assertEqual((by_type.event_type, by_type.occurred_at), ("Session Completed", "t"))
        for body, says in (
            ('{"eventId":"e","data":{"id":1}}', "ServiceTitan body has no `eventType`"),
            ('{"eventType":"Session Completed","tenantId":42}', "`Session Completed` body has no `data`"),
            ('{"eventType":"Session Completed","data":{"customer":{}}}', "no `data.sessionId` or `data.id`"),
            ('{"eventType":"Session Completed","data":"sess_1"}', "data does not have the expected shape"),
            ('{"eventType":"x","tenantId":[1]}', "expected an id"),
            ("<xml/>", "ServiceTitan body is not JSON"),
        ):
            self.fails(says, frm("servicetitan", "unknown", body), lambda e: e.servicetitan().session().require_id())

    # ---- Jobber
    def test_jobber_notices(self):
        body = '{"data":{"webHookEvent":{"topic":"CLIENT_CREATE","appId":"3ef2","accountId":"MQ==","itemId":"MQ==","occurredAt":"2021-08-12T16:31:36-06:00"}}}'
        n = within(frm("jobber", "client.created", body), lambda e: e.jobber())
        self.assertEqual((n.topic, n.entity_type(), n.action(), n.app_id, n.account_id, n.item_id, n.occurred_at), ("CLIENT_CREATE", "client", "CREATE", "3ef2", "MQ==", "MQ==", "2021-08-12T16:31:36-06:00"))
        multi = jobber.parse('{"data":{"webHookEvent":{"topic":"PAYMENT_RECORD_CREATE","itemId":"Z2lk"}}}')
        self.assertEqual((multi.entity_type(), multi.action(), multi.account_id), ("payment_record", "CREATE", None))
        for body, says in (('{"data":{}}', "missing field `webHookEvent`"), ('{"webHookEvent":{"topic":"JOB_UPDATE"}}', "missing field `data`"), ('{"data":{"webHookEvent":{"topic":"JOB_UPDATE"}}}', "missing field `itemId`"), ("", "Jobber body is not JSON")):
            self.fails("event evt_test: Jobber body", frm("jobber", "job.updated", body), lambda e: e.jobber())
            self.fails(says, frm("jobber", "job.updated", body), lambda e: e.jobber())

    # ---- Standard Webhooks
    def test_standard_webhooks_payloads(self):
        headers = {"Webhook-Id": "msg_p5jX"}
        p = within(frm("standard-webhooks", "unknown", '{"type":"job.completed","timestamp":"2025-06-12T21:47:09Z","data":{"id":"job_1"}}', headers=headers), lambda e: e.standard_webhooks())
        self.assertEqual((p.kind, p.timestamp, p.webhook_id, p.require_data()["id"]), ("job.completed", "2025-06-12T21:47:09Z", "msg_p5jX", "job_1"))
        self.fails("event evt_test: Standard Webhooks body does not have the expected shape: missing field `type`", frm("standard-webhooks", "unknown", '{"test": 2432232314}', headers=headers), lambda e: e.standard_webhooks())
        with self.assertRaises(PluginError) as caught:
            standard_webhooks.parse('{"type":"job.completed","data":null}').require_data()
        self.assertEqual(caught.exception.message, "Standard Webhooks `job.completed` payload has no `data`")


if __name__ == "__main__":
    unittest.main()
