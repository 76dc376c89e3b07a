// Unit-testing fieldhook plugins under plain Node, without a WebAssembly
// build: a fake host (config, kv, log, canned HTTP answers) and fake events
// that behave like the host's (read field by field, unusable after the call).
//
//     import { FakeHost, event } from "@fieldhook/guest-sdk/testing";
//     import { handler } from "./plugin.js";
//
//     const host = new FakeHost({ config: { endpoint: "https://books.example.com/x" } });
//     const result = await host.run(handler, event({ kind: "job.completed", body: { job: { id: "j1" } } }));
//     assert.equal(result.type, "deliver");
//
// Run with `node --import <guest-sdk-js>/register.mjs --test plugin.test.mjs`.
import { useHost } from "./core.js";

const utf8 = new TextEncoder();
const decoder = new TextDecoder();
const DISPOSE = Symbol.dispose || Symbol.for("dispose");

const toBytes = (v) =>
  v instanceof Uint8Array ? v : typeof v === "string" ? utf8.encode(v) : utf8.encode(JSON.stringify(v));

/** What `event({...})` accepts. */
const DEFAULTS = {
  id: "evt_test",
  source: "test",
  vendor: "test",
  kind: "unknown",
  entity: null,
  receivedAtMs: 0,
  occurredAt: null,
  attempt: 1,
  dedupeKey: null,
  parsed: true,
  coalesced: 1,
  headers: {},
  body: "",
};

/**
 * A fake of the host's `event` resource: `event({ vendor, kind, entity,
 * headers, body, ... })`. `body` may be bytes, text or any JSON value;
 * `headers` an object or `[{ name, value }]`; `entity` `{ kind, id, url? }`.
 * Unset fields read as the host's defaults (id `evt_test`, source and
 * vendor `test`, attempt 1, ...). `reads` lists the fields the plugin read.
 */
export function event(fields = {}) {
  const unknown = Object.keys(fields).filter((k) => !(k in DEFAULTS));
  if (unknown.length) throw new TypeError(`event(): unknown field(s) ${unknown.join(", ")}`);
  return new FakeEvent({ ...DEFAULTS, ...fields });
}

/** The same as `event`, from a sample file of `fieldhook plugin run --event` (parsed JSON). */
export function eventFromSample(sample) {
  return event({
    source: sample.source ?? DEFAULTS.source,
    vendor: sample.vendor ?? DEFAULTS.vendor,
    kind: sample.kind ?? DEFAULTS.kind,
    entity: sample.entity ?? null,
    occurredAt: sample.occurred_at ?? null,
    headers: sample.headers ?? {},
    body: sample.body ?? "",
  });
}

class FakeEvent {
  constructor(f) {
    this._f = f;
    this._live = true;
    /** The fields read, in order (`header:<name>` for single headers). */
    this.reads = [];
    this.headerList = Array.isArray(f.headers)
      ? f.headers.map((h) => ({ name: h.name, value: toBytes(h.value) }))
      : Object.entries(f.headers).map(([name, value]) => ({ name, value: toBytes(value) }));
    this.bodyBytes = toBytes(f.body);
  }
  _get(name, value) {
    if (!this._live) throw new Error(`event.${name}() called after the call ended: the host's borrow is gone`);
    this.reads.push(name);
    return value;
  }
  id() { return this._get("id", this._f.id); }
  source() { return this._get("source", this._f.source); }
  vendor() { return this._get("vendor", this._f.vendor); }
  kind() { return this._get("kind", this._f.kind); }
  entity() {
    const e = this._f.entity;
    return this._get("entity", e ? { kind: e.kind, id: String(e.id), url: e.url ?? undefined } : undefined);
  }
  receivedAtMs() { return this._get("receivedAtMs", BigInt(this._f.receivedAtMs)); }
  occurredAt() { return this._get("occurredAt", this._f.occurredAt ?? undefined); }
  attempt() { return this._get("attempt", this._f.attempt); }
  dedupeKey() { return this._get("dedupeKey", this._f.dedupeKey ?? undefined); }
  parsed() { return this._get("parsed", this._f.parsed); }
  coalesced() { return this._get("coalesced", this._f.coalesced); }
  header(name) {
    const h = this.headerList.find((h) => h.name.toLowerCase() === name.toLowerCase());
    return this._get(`header:${name.toLowerCase()}`, h ? h.value : undefined);
  }
  headers() { return this._get("headers", this.headerList.map((h) => ({ ...h }))); }
  body() { return this._get("body", this.bodyBytes); }
  /** True once the plugin (or the SDK) dropped the handle. */
  get disposed() { return !this._live; }
  [DISPOSE]() {
    if (!this._live) throw new Error("event handle dropped twice");
    this._live = false;
  }
}

function headerObject(headers) {
  const out = {};
  for (const h of headers) out[h.name.toLowerCase()] = decoder.decode(h.value);
  return out;
}

function matches(rule, method, url) {
  if (rule.method && rule.method.toUpperCase() !== method) return false;
  return rule.url.endsWith("*") ? url.startsWith(rule.url.slice(0, -1)) : url === rule.url;
}

/**
 * A fake fieldhook host: `config` values, an in-memory `kv` (a Map; `kvFail`
 * makes every kv call fail with that kv-error tag), `log` lines recorded in
 * `logs`, and canned answers to outbound HTTP in `responses`:
 * `[{ method?, url (exact, or a prefix ending in *), status = 200, headers = {}, body }]`
 * (a non-string body is sent as JSON). A request that matches none is denied
 * as the daemon's policy would deny it: `fetch` rejects with a TypeError.
 * Every request is recorded in `requests`.
 */
export class FakeHost {
  constructor({ config = {}, kv = {}, responses = [], kvFail = null } = {}) {
    this.config = { ...config };
    this.kv = new Map(Object.entries(kv).map(([k, v]) => [k, toBytes(v)]));
    /** kv keys with their TTL in ms, when one was set. */
    this.kvTtl = new Map();
    this.kvFail = kvFail;
    this.responses = responses;
    this.logs = [];
    this.requests = [];
  }

  /** Makes this the host of the SDK (`run` does it for you). */
  install() {
    useHost(this);
    return this;
  }

  log(level, message) {
    this.logs.push({ level, message });
  }
  configEntries() {
    return Object.entries(this.config).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
  _kv(op) {
    if (this.kvFail) {
      const e = new Error(`kv ${op} failed`);
      e.payload = { tag: this.kvFail, val: `fake ${this.kvFail}` };
      throw e;
    }
  }
  kvGet(key) {
    this._kv("get");
    return this.kv.get(key);
  }
  kvSet(key, value, ttlMs) {
    this._kv("set");
    this.kv.set(key, value);
    if (ttlMs === undefined) this.kvTtl.delete(key);
    else this.kvTtl.set(key, Number(ttlMs));
  }
  kvDelete(key) {
    this._kv("delete");
    return this.kv.delete(key);
  }

  async fetch(input, init = {}) {
    const request = new globalThis.Request(input, init);
    const body = new Uint8Array(await request.arrayBuffer());
    const headers = {};
    request.headers.forEach((v, k) => (headers[k] = v));
    const record = { method: request.method, url: request.url, headers, body: decoder.decode(body), outcome: "denied" };
    this.requests.push(record);
    const rule = this.responses.find((r) => matches(r, request.method, request.url));
    if (!rule) throw new TypeError("NetworkError when attempting to fetch resource.");
    record.outcome = "canned";
    const json = rule.body !== undefined && typeof rule.body !== "string" && !(rule.body instanceof Uint8Array);
    return new globalThis.Response(json ? JSON.stringify(rule.body) : (rule.body ?? ""), {
      status: rule.status ?? 200,
      headers: { ...(json ? { "content-type": "application/json" } : {}), ...(rule.headers ?? {}) },
    });
  }

  /**
   * Runs `handler` (what `definePlugin` returned) on `ev` exactly as the
   * component export is called, with this host installed and the global
   * `fetch` answered by it. Resolves to `{ type: "skip" }`,
   * `{ type: "drop", reason }`, `{ type: "deliver", requests: [{ method,
   * url, headers, body, json, idempotencyKey }] }` or `{ type: "error",
   * message, retryable }`. Fails the test when the plugin kept the event.
   */
  async run(handler, ev) {
    this.install();
    const realFetch = globalThis.fetch;
    globalThis.fetch = (input, init) => this.fetch(input, init);
    let result;
    try {
      const decision = await handler.handle(ev);
      result = describeDecision(decision);
    } catch (e) {
      if (!e || !e.payload) throw e;
      result = { type: "error", message: e.payload.message, retryable: e.payload.retryable };
    } finally {
      globalThis.fetch = realFetch;
    }
    if (ev instanceof FakeEvent && !ev.disposed) throw new Error("the event handle was not dropped by the end of the call");
    return result;
  }
}

function describeDecision(d) {
  switch (d.tag) {
    case "skip":
      return { type: "skip" };
    case "drop":
      return { type: "drop", reason: d.val };
    case "deliver":
      return {
        type: "deliver",
        requests: d.val.map((r) => {
          const body = decoder.decode(r.body);
          let json;
          try {
            json = body ? JSON.parse(body) : undefined;
          } catch {
            json = undefined;
          }
          return { method: r.method, url: r.url, headers: headerObject(r.headers), body, json, idempotencyKey: r.idempotencyKey ?? null };
        }),
      };
    default:
      throw new Error(`not a decision: ${JSON.stringify(d)}`);
  }
}
