import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { config, definePlugin, deliver, drop, http, kv, log, PluginError, Request, skip } from "@fieldhook/guest-sdk";
import { event, FakeHost } from "@fieldhook/guest-sdk/testing";

/** Runs `fn(event)` as a plugin's handle on `ev`, returning what it returned (as `{ type: "drop", reason }`). */
async function within(ev, fn, host = new FakeHost()) {
  let seen;
  const handler = definePlugin({
    async handle(e) {
      seen = await fn(e);
      return drop("done");
    },
  });
  const result = await host.run(handler, ev);
  if (result.type === "error") throw new PluginError(result.message, result.retryable);
  return seen;
}

test("fields are read from the host on first use, once each", async () => {
  const ev = event({ id: "evt_9", kind: "job.completed", receivedAtMs: 1700000000123, entity: { kind: "job", id: 7 }, body: "{}" });
  const got = await within(ev, (e) => [e.kind, e.kind, e.id, e.receivedAtMs, e.entity, e.occurredAt, e.dedupeKey, e.parsed, e.coalesced, e.attempt]);
  assert.deepEqual(got, ["job.completed", "job.completed", "evt_9", 1700000000123, { kind: "job", id: "7", url: null }, null, null, true, 1, 1]);
  assert.deepEqual(ev.reads, ["kind", "id", "receivedAtMs", "entity", "occurredAt", "dedupeKey", "parsed", "coalesced", "attempt"]);
});

test("one header is asked for by name, without copying them all", async () => {
  const ev = event({ headers: { "Content-Type": "application/json", "X-Bin": new Uint8Array([0xff]) } });
  const got = await within(ev, (e) => [e.header("content-type"), e.header("CONTENT-TYPE"), e.header("missing"), e.headerBytes("x-bin")]);
  assert.deepEqual(got.slice(0, 3), ["application/json", "application/json", null]);
  assert.deepEqual([...got[3]], [0xff]);
  assert.deepEqual(ev.reads, ["header:content-type", "header:missing", "header:x-bin"]);
  const all = event({ headers: [{ name: "A", value: "1" }] });
  assert.equal(await within(all, (e) => (e.headers.length, e.header("a"))), "1");
  assert.deepEqual(all.reads, ["headers"], "with every header read, single lookups use them");
});

test("json is parsed once; a body that is not JSON is a fatal error naming the event", async () => {
  const ev = event({ body: { a: 1 } });
  assert.equal(await within(ev, (e) => e.json() === e.json()), true);
  assert.deepEqual(ev.reads, ["body"]);
  await assert.rejects(within(event({ id: "evt_x", body: "<xml/>" }), (e) => e.json()), (err) => {
    assert.equal(err.retryable, false);
    assert.match(err.message, /^event evt_x: body is not JSON/);
    return true;
  });
  assert.equal(await within(event({ body: new Uint8Array([104, 0xff]) }), (e) => e.text()), "h\ufffd");
});

test("the event handle is dropped when handle returns, even when it throws", async () => {
  let kept;
  const handler = definePlugin({
    handle(e) {
      kept = e;
      e.kind;
      throw new Error("boom");
    },
  });
  const ev = event({ kind: "x" });
  const result = await new FakeHost().run(handler, ev);
  assert.deepEqual(result, { type: "error", message: "uncaught Error: boom", retryable: false });
  assert.ok(ev.disposed);
  assert.equal(kept.kind, "x", "fields read during the call stay readable");
  assert.throws(() => kept.body, /read after handle returned/);
});

test("filter false skips; filter and handle may decide skip, drop or deliver", async () => {
  const host = new FakeHost();
  const only = (kind) => definePlugin({ filter: (e) => e.kind === kind, handle: () => skip() });
  assert.deepEqual(await host.run(only("a"), event({ kind: "b" })), { type: "skip" });
  assert.deepEqual(await host.run(only("a"), event({ kind: "a" })), { type: "skip" });
  const none = definePlugin({ handle: () => undefined });
  const err = await host.run(none, event());
  assert.equal(err.type, "error");
  assert.match(err.message, /handle must return skip\(\), drop\(reason\) or deliver/);
  const async = definePlugin({ handle: async () => deliver([Request.put("https://a.example/x")], Request.get("https://a.example/y")) });
  const result = await host.run(async, event());
  assert.deepEqual(result.requests.map((r) => r.method), ["PUT", "GET"]);
});

test("PluginError.retry and fatal keep their retryability; other errors are fatal", async () => {
  const failing = (error) => definePlugin({ handle: () => { throw error; } });
  const host = new FakeHost();
  assert.deepEqual(await host.run(failing(PluginError.retry("503")), event()), { type: "error", message: "503", retryable: true });
  assert.deepEqual(await host.run(failing(PluginError.fatal("bad")), event()), { type: "error", message: "bad", retryable: false });
  assert.deepEqual(await host.run(failing("plain"), event()), { type: "error", message: "uncaught error: plain", retryable: false });
});

test("requests: builder, JSON, headers, idempotency key", () => {
  const r = Request.post("https://books.example.com/x")
    .header("content-type", "application/vnd.api+json")
    .json({ a: 1 })
    .header("X-A", "1")
    .header("x-a", "2")
    .appendHeader("X-A", "3")
    .withIdempotencyKey("k1");
  assert.equal(new TextDecoder().decode(r.body), '{"a":1}');
  assert.equal(r.headerValue("Content-Type"), "application/vnd.api+json");
  assert.deepEqual(r.headers.filter((h) => h.name.toLowerCase() === "x-a").length, 2);
  assert.equal(r.toWit().idempotencyKey, "k1");
  assert.equal(new Request("patch", "http://127.0.0.1/x").method, "PATCH");
  for (const url of ["/relative", "ftp://x/y", "https://"]) {
    assert.throws(() => Request.get(url), (e) => e instanceof PluginError && !e.retryable, url);
  }
  assert.throws(() => Request.post("https://a.example").json({ n: 1n }), /cannot be serialized as JSON/);
  assert.throws(() => deliver({ url: "x" }), /takes Request objects/);
});

test("config: get, require (missing or empty is fatal), entries", async () => {
  const host = new FakeHost({ config: { endpoint: "https://a.example", empty: "" } });
  const got = await within(event(), () => [config.get("endpoint"), config.get("nope"), config.entries()], host);
  assert.deepEqual(got, ["https://a.example", null, { empty: "", endpoint: "https://a.example" }]);
  for (const key of ["nope", "empty"]) {
    await assert.rejects(within(event(), () => config.require(key), host), {
      message: `config \`${key}\` is not set: add it under [config] in plugin.toml`,
    });
  }
});

test("kv: get, set with ttl, delete, JSON; failures are PluginErrors", async () => {
  const host = new FakeHost({ kv: { seen: "1" } });
  const got = await within(event(), () => {
    kv.set("a", "x", { ttlMs: 60000 });
    kv.setJson("j", { n: 1 });
    return [kv.getText("seen"), kv.getText("a"), kv.getJson("j"), kv.get("missing"), kv.delete("a"), kv.delete("a")];
  }, host);
  assert.deepEqual(got, ["1", "x", { n: 1 }, null, true, false]);
  assert.equal(host.kvTtl.get("j"), undefined);
  await within(event(), () => kv.set("t", new Uint8Array([1]), { ttlMs: 5 }), host);
  assert.equal(host.kvTtl.get("t"), 5);
  for (const [tag, retryable] of [["unavailable", true], ["too-large", false], ["quota-exceeded", false]]) {
    await assert.rejects(within(event(), () => kv.get("a"), new FakeHost({ kvFail: tag })), (e) => {
      assert.equal(e.retryable, retryable, tag);
      assert.match(e.message, new RegExp(`key-value store: get \`a\`: fake ${tag}`));
      return true;
    });
  }
});

test("log lines reach the host with their level", async () => {
  const host = new FakeHost();
  await within(event(), () => { log.info("hi"); log.warn(3); }, host);
  assert.deepEqual(host.logs, [{ level: "info", message: "hi" }, { level: "warn", message: "3" }]);
});

test("http: canned answers, status errors, denials", async () => {
  const host = new FakeHost({
    responses: [
      { method: "GET", url: "https://api.example.com/ok", body: { id: 1 } },
      { url: "https://api.example.com/busy*", status: 503, body: "later" },
      { url: "https://api.example.com/gone", status: 404 },
    ],
  });
  const got = await within(event(), async () => {
    const r = await http.send(Request.get("https://api.example.com/ok").withIdempotencyKey("k"));
    return [r.status, r.ok, r.json(), r.header("content-type"), await http.getJson("https://api.example.com/ok")];
  }, host);
  assert.deepEqual(got, [200, true, { id: 1 }, "application/json", { id: 1 }]);
  assert.equal(host.requests[0].headers["idempotency-key"], "k");
  await assert.rejects(within(event(), () => http.getJson("https://api.example.com/busy/1"), host), { retryable: true, message: "https://api.example.com/busy/1 answered HTTP 503" });
  await assert.rejects(within(event(), () => http.getJson("https://api.example.com/gone"), host), { retryable: false });
  await assert.rejects(within(event(), () => http.get("https://elsewhere.example.com/"), host), (e) => {
    assert.equal(e.retryable, true);
    assert.match(e.message, /^GET https:\/\/elsewhere.example.com\/: fetch failed/);
    return true;
  });
  assert.equal(host.requests.at(-1).outcome, "denied");
});

test("without a host the SDK says how to get one", () => {
  const script = 'import { config } from "@fieldhook/guest-sdk"; try { config.get("x"); } catch (e) { console.log(e.message); }';
  const out = execFileSync(process.execPath, ["--import", new URL("../register.mjs", import.meta.url).pathname, "--input-type=module", "-e", script]);
  assert.match(String(out), /no fieldhook host: .* use FakeHost from @fieldhook\/guest-sdk\/testing/);
});
