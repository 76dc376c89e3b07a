// The Rust SDK's vendor tests (guest-sdk/src/vendors/), in JavaScript.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { definePlugin, drop, vendors } from "@fieldhook/guest-sdk";
import { event, FakeHost } from "@fieldhook/guest-sdk/testing";

const sample = (plugin, name) => readFileSync(new URL(`../../plugins/${plugin}/samples/${name}`, import.meta.url), "utf8").trim();

/** `fn(event)` inside a call; resolves to its value or rejects with its PluginError. */
async function within(ev, fn) {
  let value;
  const result = await new FakeHost().run(definePlugin({ handle: (e) => ((value = fn(e)), drop("ok")) }), ev);
  if (result.type === "error") throw Object.assign(new Error(result.message), { retryable: result.retryable });
  return value;
}
const from = (vendor, kind, body, more = {}) => event({ vendor, kind, body, ...more });
const fails = (promise, says) =>
  assert.rejects(promise, (e) => {
    assert.equal(e.retryable, false);
    assert.ok(e.message.includes(says), `${e.message}\n  does not say: ${says}`);
    return true;
  });

test("an event of another vendor is refused with both vendors named", async () => {
  for (const view of ["housecallPro", "jobber", "servicetrade", "servicetitan", "standardWebhooks"]) {
    await fails(within(from("servicem8", "job.updated", "{}"), (e) => e[view]()), "vendor `servicem8`");
  }
  await fails(within(event({ kind: "job.updated", body: "{}" }), (e) => e.servicem8()), "event evt_test: not a ServiceM8 event: it arrived on source `test` of vendor `test`, not `servicem8`");
});

// ---- Housecall Pro
const CUSTOMER_UPDATED = '{"event":"customer.updated","event_occurred_at":"2026-07-24T05:38:14Z","company_id":"233b75f9-4b4f-4a83-b21b-c1ed9e571daa","customer":{"id":"cus_d8924aacf0d24a888280e12187e40f6f","first_name":"ZZ-Webhook","last_name":"Test-DELETE-ME"}}';

test("housecall pro: the public vector carries the customer under customer", async () => {
  const env = await within(from("housecall-pro", "customer.updated", CUSTOMER_UPDATED), (e) => e.housecallPro());
  assert.equal(env.event, "customer.updated");
  assert.equal(env.recordType(), "customer");
  assert.equal(env.occurredAt(), "2026-07-24T05:38:14Z");
  assert.equal(env.companyId, "233b75f9-4b4f-4a83-b21b-c1ed9e571daa");
  const customer = env.customer();
  assert.equal(customer.id, "cus_d8924aacf0d24a888280e12187e40f6f");
  assert.equal(customer.displayName(), "ZZ-Webhook Test-DELETE-ME");
  assert.throws(() => env.job(), { message: "Housecall Pro `customer.updated` carries a customer record, not a job" });
});

test("housecall pro: a completed job carries the job with its customer and lines", async () => {
  for (const [body, sum] of [[sample("hcp-invoice-accounting", "job-completed.json"), 24500]]) {
    const job = await within(from("housecall-pro", "job.completed", body), (e) => e.housecallPro().job());
    assert.equal(job.id, "job_7f3e");
    assert.equal(job.invoiceNumber, "1042");
    assert.equal(job.totalAmount, 24500);
    assert.ok(job.customer.email);
    assert.equal(job.lineItems.reduce((s, l) => s + l.unitPrice * l.quantity, 0), sum);
  }
});

test("housecall pro: a paid invoice, the data envelope, and other keys", async () => {
  const invoice = await within(from("housecall-pro", "invoice.paid", sample("hcp-invoice-accounting", "invoice-paid.json")), (e) => e.housecallPro().invoice());
  assert.deepEqual([invoice.id, invoice.jobId, invoice.amount, invoice.status, invoice.paidAt], ["inv_51c0", "job_7f3e", 24500, "paid", "2026-11-21T09:29:41Z"]);
  const data = vendors.housecallPro.parse('{"id":"whe_1","event":"invoice.paid","created_at":"2026-11-21T09:30:00Z","data":{"id":"inv_1","amount":100}}');
  assert.equal(data.id, "whe_1");
  assert.equal(data.occurredAt(), "2026-11-21T09:30:00Z");
  assert.equal(data.invoice().amount, 100);
  assert.equal(vendors.housecallPro.parse('{"event":"job.completed","data":{"job":{"id":"job_1"}}}').job().id, "job_1");
  assert.equal(vendors.housecallPro.parse('{"event":"employee.created","employee":{"id":"pro_18c3f7"}}').record().id, "pro_18c3f7");
});

test("housecall pro: customer names use what is there", () => {
  const name = (c) => new vendors.housecallPro.Customer(c).displayName();
  assert.equal(name({ first_name: " Dana ", last_name: null }), "Dana");
  assert.equal(name({ last_name: "Reyes" }), "Reyes");
  assert.equal(name({ first_name: "", company: " Acme " }), "Acme");
  assert.equal(name({ id: "cus_1" }), null);
});

test("housecall pro: a malformed envelope says what is missing", async () => {
  for (const [body, says] of [
    ['{"foo":"bar"}', "Housecall Pro body does not have the expected shape: missing field `event`"],
    ['{"event":"job.completed","company_id":"c"}', "Housecall Pro `job.completed` body has no `job` object (nor `data`)"],
    ['{"event":"job.completed","job":{"total_amount":1}}', "missing field `id`"],
    ['{"event":"job.completed","job":{"id":"j","total_amount":"lots"}}', '`job.completed` record does not have the expected shape: invalid type: string "lots", expected an integer'],
    ["{", "Housecall Pro body is not JSON"],
  ]) {
    await fails(within(from("housecall-pro", "job.completed", body), (e) => e.housecallPro().job()), says);
  }
});

// ---- ServiceTrade
const ST_MESSAGE = '{"messageId":"6f1d2c3b-1111-4222-8333-944455556666","timestamp":"1401833057","data":[{"action":"updated","timestamp":1401833052,"userId":1234,"entity":{"type":"appointment","id":34872,"uri":"https://api.servicetrade.com/api/appointment/34872"},"changeset":[{"field":"status","oldValue":"scheduled","newValue":"completed"}]}]}';

test("servicetrade: a message lists each changed entity with its changeset", async () => {
  const [message, change] = await within(from("servicetrade", "appointment.updated", ST_MESSAGE), (e) => {
    const m = e.servicetrade();
    return [m, m.changeFor(e)];
  });
  assert.equal(message.messageId, "6f1d2c3b-1111-4222-8333-944455556666");
  assert.equal(message.timestampSecs(), 1401833057);
  assert.ok(change.is("appointment", "UPDATED"));
  assert.deepEqual([change.timestamp, change.userId, change.entity.id], [1401833052, 1234, 34872]);
  assert.equal(change.entity.uri, "https://api.servicetrade.com/api/appointment/34872");
  assert.equal(change.field("status").oldStr(), "scheduled");
  assert.equal(change.field("status").newStr(), "completed");
  assert.equal(change.field("total"), null);
});

test("servicetrade: in a batch each event finds its own change", async () => {
  const batch = sample("servicetrade-job-status", "batch-mixed.json");
  const about = (kind, id) => from("servicetrade", kind, batch, { entity: { kind: kind.split(".")[0], id } });
  const job = await within(about("job.updated", "88124"), (e) => e.servicetrade().changeFor(e));
  assert.equal(job.field("totalPrice").newValue, 200);
  assert.equal(job.field("totalPrice").newStr(), null, "a number is not a string");
  assert.equal((await within(about("jobitem.updated", "5521"), (e) => e.servicetrade().changeFor(e))).entity.id, 5521);
  await fails(within(from("servicetrade", "job.updated", batch), (e) => e.servicetrade().changeFor(e)), "names no entity");
  await fails(within(about("job.updated", "1"), (e) => e.servicetrade().changeFor(e)), "ServiceTrade message 6c1c1a7e-8f1e-4a57-9d7e-3b0a6f1f0002 has no change of job 1");
});

test("servicetrade: a malformed message says what is missing", async () => {
  for (const [body, says] of [
    ['{"timestamp":"1","data":[]}', "missing field `messageId`"],
    ['{"messageId":"m"}', "missing field `data`"],
    ['{"messageId":"m","data":[{"action":"updated"}]}', "missing field `entity`"],
    ['{"messageId":"m","data":[{"action":"updated","entity":{"type":"job","id":1.5}}]}', "expected an id"],
    ["", "ServiceTrade body is not JSON"],
  ]) {
    await fails(within(from("servicetrade", "job.updated", body), (e) => e.servicetrade()), says);
  }
});

// ---- ServiceM8
const SM8_OBJECT = '{"object":"job","entry":[{"changed_fields":["status"],"time":"2015-01-01 00:00:00","uuid":"e3b0c442-98fc-4c14-9afb-f4c8996fb924"}],"resource_url":"https://api.servicem8.com/api_1.0/job/e3b0c442-98fc-4c14-9afb-f4c8996fb924.json"}';
const SM8_TWO = '{"object":"JobActivity","entry":[{"changed_fields":["start_date"],"time":"2024-01-01 00:00:00","uuid":"u1"},{"changed_fields":[],"time":"2024-01-01 00:00:01","uuid":"u2"}],"resource_url":"https://api.servicem8.com/api_1.0/jobactivity/u2.json"}';

test("servicem8: an object webhook names the object, the entry and where to fetch it", async () => {
  const [notice, entry] = await within(from("servicem8", "job.updated", SM8_OBJECT), (e) => {
    const n = e.servicem8();
    return [n, n.entryFor(e)];
  });
  assert.ok(notice.isObjectWebhook());
  assert.equal(notice.eventName(), null);
  assert.equal(entry.uuid, "e3b0c442-98fc-4c14-9afb-f4c8996fb924");
  assert.ok(entry.changed("status") && !entry.changed("total"));
  assert.equal(notice.resourceUrlFor(entry), "https://api.servicem8.com/api_1.0/job/e3b0c442-98fc-4c14-9afb-f4c8996fb924.json");
});

test("servicem8: with several entries each event gets its own entry and url", async () => {
  const about = (id) => from("servicem8", "job.updated", SM8_TWO, { entity: { kind: "jobactivity", id } });
  const [notice, first] = await within(about("u1"), (e) => [e.servicem8(), e.servicem8().entryFor(e)]);
  assert.equal(notice.resourceUrlFor(first), "https://api.servicem8.com/api_1.0/jobactivity/u1.json");
  assert.equal((await within(about("u2"), (e) => e.servicem8().entryFor(e))).changedFields.length, 0);
  await fails(within(from("servicem8", "job.updated", SM8_TWO), (e) => e.servicem8().entryFor(e)), "names no entity");
  await fails(within(about("u9"), (e) => e.servicem8().entryFor(e)), "ServiceM8 notice has no entry with uuid `u9`");
});

test("servicem8: an event webhook names its event; malformed notices say why", async () => {
  const notice = vendors.servicem8.parse('{"eventName":"job.completed","data":{"uuid":"j-9"}}');
  assert.equal(notice.eventName(), "job.completed");
  assert.equal(notice.data.uuid, "j-9");
  for (const [body, says] of [
    ['{"object":"job","resource_url":"x"}', "object webhook has no `entry`"],
    ['{"entry":[{"uuid":"a"}]}', "object webhook has no `object`"],
    ['{"foo":"bar"}', "neither an object webhook"],
    ['{"object":"job","entry":[{"time":"2015-01-01 00:00:00"}]}', "missing field `uuid`"],
    ["mode=subscribe&challenge=x", "ServiceM8 body is not JSON"],
  ]) {
    await fails(within(from("servicem8", "job.updated", body), (e) => e.servicem8()), says);
  }
});

// ---- ServiceTitan / Scheduling Pro
test("servicetitan: the public vector is a job event with tenant and record id", async () => {
  const env = await within(from("servicetitan", "job.completed", '{"eventId":"8d9f3c7e-0000-4000-8000-000000000001","eventType":"job.completed","tenantId":123456789,"data":{"id":98765}}'), (e) => e.servicetitan());
  assert.deepEqual([env.eventType, env.eventId, env.tenantId, env.dataId(), env.schedulingPro()], ["job.completed", "8d9f3c7e-0000-4000-8000-000000000001", 123456789, 98765, null]);
  assert.throws(() => env.session(), /`job.completed` is not a Scheduling Pro event/);
});

test("servicetitan: an abandoned session has contact details; a completed one its job", async () => {
  const env = await within(from("servicetitan", "scheduling.session_abandoned", sample("schedulingpro-crm-lead", "qualified-abandoned-session.json")), (e) => e.servicetitan());
  assert.equal(env.schedulingPro(), "QualifiedAbandonedSession");
  assert.equal(env.occurredAt, "2026-11-21T18:02:11Z");
  const session = env.session();
  assert.deepEqual([session.requireId(), session.serviceName, session.campaign], ["sess_78", "Water heater repair", "fall-promo"]);
  assert.deepEqual([session.contact.displayName(), session.contact.email, session.contact.phone, session.contact.zip], ["Sam Ortiz", "sam.ortiz@example.com", "+15125550142", "78701"]);
  const done = vendors.servicetitan.parse(sample("schedulingpro-crm-lead", "session-completed.json"));
  assert.equal(done.schedulingPro(), "SessionCompleted");
  assert.equal(done.session().jobId, 5512093);
});

test("servicetitan: names are matched loosely; malformed envelopes say what is missing", async () => {
  for (const [name, expected] of [["Session Completed", "SessionCompleted"], ["SESSION_COMPLETED", "SessionCompleted"], ["scheduling.session_abandoned", "QualifiedAbandonedSession"], ["Job Booked", null]]) {
    assert.equal(vendors.servicetitan.parse(JSON.stringify({ eventType: name })).schedulingPro(), expected, name);
  }
  const byType = vendors.servicetitan.parse('{"type":"Session Completed","timestamp":"t"}');
  assert.deepEqual([byType.eventType, byType.occurredAt], ["Session Completed", "t"]);
  for (const [body, says] of [
    ['{"eventId":"e","data":{"id":1}}', "ServiceTitan body has no `eventType`"],
    ['{"eventType":"Session Completed","tenantId":42}', "`Session Completed` body has no `data`"],
    ['{"eventType":"Session Completed","data":{"customer":{}}}', "no `data.sessionId` or `data.id`"],
    ['{"eventType":"Session Completed","data":"sess_1"}', "data does not have the expected shape"],
    ['{"eventType":"x","tenantId":[1]}', "expected an id"],
    ["<xml/>", "ServiceTitan body is not JSON"],
  ]) {
    await fails(within(from("servicetitan", "unknown", body), (e) => e.servicetitan().session().requireId()), says);
  }
});

// ---- Jobber
test("jobber: the public vector names topic, account and item; malformed notices say why", async () => {
  const body = '{"data":{"webHookEvent":{"topic":"CLIENT_CREATE","appId":"3ef22a50-072d-430c-a78f-b7646657560b","accountId":"MQ==","itemId":"MQ==","occurredAt":"2021-08-12T16:31:36-06:00"}}}';
  const n = await within(from("jobber", "client.created", body), (e) => e.jobber());
  assert.deepEqual([n.topic, n.entityType(), n.action(), n.appId, n.accountId, n.itemId, n.occurredAt], ["CLIENT_CREATE", "client", "CREATE", "3ef22a50-072d-430c-a78f-b7646657560b", "MQ==", "MQ==", "2021-08-12T16:31:36-06:00"]);
  const multi = vendors.jobber.parse('{"data":{"webHookEvent":{"topic":"PAYMENT_RECORD_CREATE","itemId":"Z2lk"}}}');
  assert.deepEqual([multi.entityType(), multi.action(), multi.accountId], ["payment_record", "CREATE", null]);
  for (const [b, says] of [['{"data":{}}', "missing field `webHookEvent`"], ['{"webHookEvent":{"topic":"JOB_UPDATE"}}', "missing field `data`"], ['{"data":{"webHookEvent":{"topic":"JOB_UPDATE"}}}', "missing field `itemId`"], ["", "Jobber body is not JSON"]]) {
    await fails(within(from("jobber", "job.updated", b), (e) => e.jobber()), `event evt_test: Jobber body`);
    await fails(within(from("jobber", "job.updated", b), (e) => e.jobber()), says);
  }
});

// ---- Standard Webhooks
test("standard webhooks: type, timestamp, data and webhook id; missing parts named", async () => {
  const headers = { "Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek" };
  const p = await within(from("standard-webhooks", "unknown", '{"type":"job.completed","timestamp":"2025-06-12T21:47:09Z","data":{"id":"job_1"}}', { headers }), (e) => e.standardWebhooks());
  assert.deepEqual([p.kind, p.timestamp, p.webhookId, p.requireData().id], ["job.completed", "2025-06-12T21:47:09Z", "msg_p5jXN8AQM9LWM0D4loKWxJek", "job_1"]);
  await fails(within(from("standard-webhooks", "unknown", '{"test": 2432232314}', { headers }), (e) => e.standardWebhooks()), "event evt_test: Standard Webhooks body does not have the expected shape: missing field `type`");
  assert.throws(() => vendors.standardWebhooks.parse('{"type":"job.completed","data":null}').requireData(), { message: "Standard Webhooks `job.completed` payload has no `data`" });
});
