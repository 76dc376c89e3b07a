// node --import ./guest-sdk-js/register.mjs --test tests/guests/overhead-js/plugin.test.mjs
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { event, FakeHost } from "@fieldhook/guest-sdk/testing";
import { handler } from "./plugin.js";

const sample = readFileSync(new URL("../../../plugins/hcp-invoice-accounting/samples/job-completed.json", import.meta.url), "utf8");

test("a completed job becomes the record overhead-rust makes", async () => {
  const host = new FakeHost({ config: { endpoint: "http://127.0.0.1:9/out" } });
  const result = await host.run(handler, event({ id: "evt_1", kind: "job.completed", body: sample }));
  assert.equal(result.type, "deliver");
  const [request] = result.requests;
  assert.equal(request.url, "http://127.0.0.1:9/out");
  assert.equal(request.idempotencyKey, "overhead:evt_1");
  assert.deepEqual(request.json, {
    external_id: "job_7f3e",
    invoice_number: "1042",
    customer: "Dana Reyes",
    total_cents: 24500,
    occurred_at: "2026-11-20T15:04:05Z",
    event_id: "evt_1",
  });
});

test("other kinds are skipped without reading the body", async () => {
  const ev = event({ kind: "job.updated", body: sample });
  assert.deepEqual(await new FakeHost().run(handler, ev), { type: "skip" });
  assert.deepEqual(ev.reads, ["kind"]);
});

test("a body without a job maps to nulls, as in Rust", async () => {
  const host = new FakeHost({ config: { endpoint: "http://127.0.0.1:9/out" } });
  const result = await host.run(handler, event({ kind: "job.completed", body: { job: "x" } }));
  assert.deepEqual(result.requests[0].json, {
    external_id: null,
    invoice_number: null,
    customer: "",
    total_cents: null,
    occurred_at: null,
    event_id: "evt_test",
  });
});
