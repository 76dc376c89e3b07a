// node --import ../../guest-sdk-js/register.mjs --test plugin.test.mjs
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { event, eventFromSample, FakeHost } from "@fieldhook/guest-sdk/testing";
import { handler } from "./plugin.js";

const read = (name) => readFileSync(new URL(`samples/${name}`, import.meta.url), "utf8");
const WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXX";
const host = () => new FakeHost({ config: { webhook_url: WEBHOOK } });
const batch = read("batch-mixed.json");
const fromBatch = (kind, id) => event({ vendor: "servicetrade", source: "servicetrade", kind, entity: { kind: kind.split(".")[0], id }, body: batch });

test("a job status transition is posted once, with a stable idempotency key", async () => {
  const h = host();
  const result = await h.run(handler, eventFromSample(JSON.parse(read("job-completed.event.json"))));
  assert.equal(result.type, "deliver");
  assert.equal(result.requests.length, 1);
  const [request] = result.requests;
  assert.equal(request.method, "POST");
  assert.equal(request.url, WEBHOOK);
  assert.equal(request.headers["content-type"], "application/json");
  assert.equal(request.idempotencyKey, "st-status:job:88123:scheduled->completed:1794999990");
  assert.equal(request.json.text, "Job 88123: scheduled → completed (https://api.servicetrade.com/api/job/88123)");
  assert.deepEqual(request.json.entity, { type: "job", id: "88123", uri: "https://api.servicetrade.com/api/job/88123" });
  assert.equal(request.json.message_id, "6c1c1a7e-8f1e-4a57-9d7e-3b0a6f1f0001");
  assert.equal(request.json.user_id, 1234);
  assert.deepEqual(h.logs, [{ level: "info", message: "job 88123: scheduled -> completed" }]);
});

test("in a batch each event finds its own change", async () => {
  const appointment = await host().run(handler, fromBatch("appointment.updated", "34872"));
  assert.equal(appointment.requests[0].json.old_status, "scheduled");
  assert.equal(appointment.requests[0].json.new_status, "in_progress");
  const job = await host().run(handler, fromBatch("job.updated", "88124"));
  assert.deepEqual(job, { type: "drop", reason: "job.updated 88124: no status change" });
});

test("job items and created entities are skipped without reading the body", async () => {
  const item = fromBatch("jobitem.updated", "5521");
  assert.deepEqual(await host().run(handler, item), { type: "skip" });
  assert.ok(!item.reads.includes("body"), item.reads.join(","));
  const created = event({ vendor: "servicetrade", kind: "job.created", entity: { kind: "job", id: "1" }, body: batch });
  assert.deepEqual(await host().run(handler, created), { type: "skip" });
});

test("an unchanged status is dropped with the reason", async () => {
  const body = { messageId: "m", data: [{ action: "updated", entity: { type: "job", id: 7 }, changeset: [{ field: "status", oldValue: "open", newValue: "open" }] }] };
  const result = await host().run(handler, event({ vendor: "servicetrade", kind: "job.updated", entity: { kind: "job", id: "7" }, body }));
  assert.deepEqual(result, { type: "drop", reason: "job.updated 7: status unchanged (open)" });
});

test("a missing webhook_url or a malformed message is a fatal error", async () => {
  const missing = await new FakeHost().run(handler, eventFromSample(JSON.parse(read("job-completed.event.json"))));
  assert.deepEqual(missing, {
    type: "error",
    message: "config `webhook_url` is not set: add it under [config] in plugin.toml",
    retryable: false,
  });
  const malformed = await host().run(handler, event({ vendor: "servicetrade", kind: "job.updated", entity: { kind: "job", id: "1" }, body: { data: [] } }));
  assert.equal(malformed.type, "error");
  assert.equal(malformed.retryable, false);
  assert.match(malformed.message, /ServiceTrade body does not have the expected shape: missing field `messageId`/);
});
