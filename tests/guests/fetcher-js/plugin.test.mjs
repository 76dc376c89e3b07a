// node --import ./guest-sdk-js/register.mjs --test tests/guests/fetcher-js/plugin.test.mjs
import assert from "node:assert/strict";
import { test } from "node:test";
import { event, FakeHost } from "@fieldhook/guest-sdk/testing";
import { handler } from "./plugin.js";

const config = { url: "http://127.0.0.1:9/vendor/job/1", endpoint: "http://127.0.0.1:9/out" };

test("what the fetch answered is delivered", async () => {
  const host = new FakeHost({ config, responses: [{ method: "GET", url: "http://127.0.0.1:9/vendor/*", body: { id: 1 } }] });
  const result = await host.run(handler, event());
  assert.equal(result.type, "deliver");
  assert.deepEqual(result.requests[0].json, { status: 200, body: '{"id":1}' });
  assert.equal(host.requests.length, 1);
  assert.equal(host.requests[0].headers.accept, "application/json");
});

test("a fetch the host denies is a retryable failure", async () => {
  const host = new FakeHost({ config });
  const result = await host.run(handler, event());
  assert.equal(result.type, "error");
  assert.equal(result.retryable, true);
  assert.match(result.message, /^fetch failed: /);
  assert.equal(host.requests[0].outcome, "denied");
});
