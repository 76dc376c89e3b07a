// fieldhook guest SDK for JavaScript, contract `fieldhook:plugin@0.2.0`
// (../wit/0.2/plugin.wit): the lazy event, decisions, requests, errors,
// config, kv, log and HTTP.
//
// This module imports nothing from the component: it talks to a *host*
// object. In a component, `fieldhook.js` wires the real WIT imports in
// (`useHost`); in unit tests under Node, `FakeHost` from `testing.js` does.
import { PluginError } from "./errors.js";
import * as vendors from "./vendors.js";

export { PluginError };

const utf8 = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });
const DISPOSE = Symbol.dispose || Symbol.for("dispose");

// ---- the host -------------------------------------------------------------

let host = null;

/**
 * Sets the host the SDK talks to: `{ log(level, message), configEntries(),
 * kvGet(key), kvSet(key, value, ttlMs), kvDelete(key), fetch(url, init) }`.
 * `fieldhook.js` calls it with the component's imports; `FakeHost` with
 * fakes. Plugins never call it.
 */
export function useHost(next) {
  host = next;
}

function current() {
  if (!host) {
    throw new Error(
      "no fieldhook host: inside a component build with guest-sdk-js/build.mjs; " +
        "in unit tests use FakeHost from @fieldhook/guest-sdk/testing",
    );
  }
  return host;
}

const bytes = (value) => (value instanceof Uint8Array ? value : utf8.encode(String(value)));

// ---- the event ------------------------------------------------------------

const FIELDS = {
  id: "id",
  source: "source",
  vendor: "vendor",
  kind: "kind",
  entity: "entity",
  receivedAtMs: "receivedAtMs",
  occurredAt: "occurredAt",
  attempt: "attempt",
  dedupeKey: "dedupeKey",
  parsed: "parsed",
  coalesced: "coalesced",
  headers: "headers",
  body: "body",
};

/**
 * A verified webhook as the host stored it, lent for one call. Each field is
 * read from the host the first time it is used and kept for the call: a
 * plugin that looks at `kind` and skips never copies the body.
 */
export class Event {
  /** `source`: the WIT `event` resource, or a fake with the same methods. */
  constructor(source) {
    this._source = source;
    this._cache = new Map();
    this._headerCache = new Map();
    this._json = undefined;
  }

  _read(field) {
    if (this._cache.has(field)) return this._cache.get(field);
    if (!this._source) {
      throw PluginError.fatal(
        `event field \`${field}\` read after handle returned: read what you need during the call`,
      );
    }
    let value = this._source[FIELDS[field]]();
    if (value === undefined) value = null;
    if (field === "receivedAtMs") value = Number(value);
    if (field === "entity" && value) value = { kind: value.kind, id: value.id, url: value.url ?? null };
    if (field === "headers") value = value.map((h) => ({ name: h.name, value: h.value }));
    this._cache.set(field, value);
    return value;
  }

  /** Host-assigned id, stable across retries and replays (`evt_...`). */
  get id() { return this._read("id"); }
  /** Name of the configured source it arrived on. */
  get source() { return this._read("source"); }
  /** Vendor of that source: `housecall-pro`, `servicetrade`, ... */
  get vendor() { return this._read("vendor"); }
  /** Normalized kind, `<entity>.<change>`; `unknown` when the payload did not say. */
  get kind() { return this._read("kind"); }
  /** `{ kind, id, url }` of the record the event is about, or null. */
  get entity() { return this._read("entity"); }
  /** When the host received it, ms since the Unix epoch. */
  get receivedAtMs() { return this._read("receivedAtMs"); }
  /** When the vendor says it happened (vendor's own text), or null. */
  get occurredAt() { return this._read("occurredAt"); }
  /** 1 on the first run of this plugin on this event, then 2, 3, ... */
  get attempt() { return this._read("attempt"); }
  /** The key the host deduplicated deliveries of this event on, or null. */
  get dedupeKey() { return this._read("dedupeKey"); }
  /** False when the body was not the JSON the vendor documents. */
  get parsed() { return this._read("parsed"); }
  /** How many events this one stands for (more than 1 for a coalesced burst). */
  get coalesced() { return this._read("coalesced"); }
  /** Request headers as received: `[{ name, value: Uint8Array }]`. */
  get headers() { return this._read("headers"); }
  /** The raw request body, byte for byte. */
  get body() { return this._read("body"); }

  /** The first header called `name` (any case), as bytes, or null. */
  headerBytes(name) {
    const lower = name.toLowerCase();
    if (this._cache.has("headers")) {
      const h = this.headers.find((h) => h.name.toLowerCase() === lower);
      return h ? h.value : null;
    }
    if (this._headerCache.has(lower)) return this._headerCache.get(lower);
    if (!this._source) {
      throw PluginError.fatal(`event header \`${name}\` read after handle returned: read what you need during the call`);
    }
    const value = this._source.header(name) ?? null;
    this._headerCache.set(lower, value);
    return value;
  }

  /** The first header called `name` (any case), as text, or null. */
  header(name) {
    const value = this.headerBytes(name);
    return value === null ? null : decoder.decode(value);
  }

  /** The body as UTF-8 text (invalid bytes replaced). */
  text() {
    return decoder.decode(this.body);
  }

  /** The body parsed as JSON, once; a body that is not JSON is a fatal PluginError. */
  json() {
    if (this._json === undefined) {
      try {
        this._json = { value: JSON.parse(this.text()) };
      } catch (e) {
        this._json = { error: e };
      }
    }
    if (this._json.error) {
      throw PluginError.fatal(`event ${this.id}: body is not JSON (${this._json.error.message})`);
    }
    return this._json.value;
  }

  /** The parsed body or the parse error, for the vendor views. */
  _parsedBody() {
    try {
      return { value: this.json() };
    } catch {
      return { error: this._json.error };
    }
  }

  /** ServiceM8 notice (`vendor` must be `servicem8`). */
  servicem8() { return vendors.servicem8.view(this); }
  /** ServiceTrade message (`vendor` must be `servicetrade`). */
  servicetrade() { return vendors.servicetrade.view(this); }
  /** Housecall Pro envelope (`vendor` must be `housecall-pro`). */
  housecallPro() { return vendors.housecallPro.view(this); }
  /** ServiceTitan / Scheduling Pro envelope (`vendor` must be `servicetitan`). */
  servicetitan() { return vendors.servicetitan.view(this); }
  /** Jobber notice (`vendor` must be `jobber`). */
  jobber() { return vendors.jobber.view(this); }
  /** Standard Webhooks payload (`vendor` must be `standard-webhooks`). */
  standardWebhooks() { return vendors.standardWebhooks.view(this); }

  /** Ends the loan: the host's handle is dropped; fields read so far stay. */
  _release() {
    const source = this._source;
    this._source = null;
    if (source && typeof source[DISPOSE] === "function") source[DISPOSE]();
  }
}

// ---- requests and decisions -------------------------------------------------

/** An HTTP request: delivered by the host after `handle` returns, or sent now with `http.send`. */
export class Request {
  constructor(method, url) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw PluginError.fatal(`request URL \`${url}\` is not an absolute URL`);
    }
    if ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || !parsed.host) {
      throw PluginError.fatal(`request URL \`${url}\` is not http or https`);
    }
    this.method = String(method).toUpperCase();
    this.url = String(url);
    this.headers = [];
    this.body = new Uint8Array();
    this.idempotencyKey = undefined;
  }
  static get(url) { return new Request("GET", url); }
  static post(url) { return new Request("POST", url); }
  static put(url) { return new Request("PUT", url); }
  static patch(url) { return new Request("PATCH", url); }
  static delete(url) { return new Request("DELETE", url); }

  /** Sets a header, replacing any of the same name (any case). */
  header(name, value) {
    const lower = name.toLowerCase();
    this.headers = this.headers.filter((h) => h.name.toLowerCase() !== lower);
    return this.appendHeader(name, value);
  }
  /** Adds a header, keeping others of the same name. */
  appendHeader(name, value) {
    this.headers.push({ name, value: value instanceof Uint8Array ? value : utf8.encode(String(value)) });
    return this;
  }
  /** The first header called `name` (any case), as text, or null. */
  headerValue(name) {
    const lower = name.toLowerCase();
    const h = this.headers.find((h) => h.name.toLowerCase() === lower);
    return h ? decoder.decode(h.value) : null;
  }
  /** Sets the body as is (string or bytes). */
  setBody(body) {
    this.body = bytes(body);
    return this;
  }
  /** Sets a JSON body and `Content-Type: application/json` unless one is set. */
  json(value) {
    let text;
    try {
      text = JSON.stringify(value);
    } catch (e) {
      throw PluginError.fatal(`${this.method} ${this.url}: body cannot be serialized as JSON: ${e.message}`);
    }
    if (text === undefined) throw PluginError.fatal(`${this.method} ${this.url}: body cannot be serialized as JSON`);
    this.body = utf8.encode(text);
    if (this.headerValue("content-type") === null) this.header("Content-Type", "application/json");
    return this;
  }
  /** Sent as `Idempotency-Key`; for deliveries the host derives one when unset. */
  withIdempotencyKey(key) {
    this.idempotencyKey = String(key);
    return this;
  }
  /** The WIT `outbound-request` record. */
  toWit() {
    return {
      method: this.method,
      url: this.url,
      headers: this.headers.map((h) => ({ name: h.name, value: h.value })),
      body: this.body,
      idempotencyKey: this.idempotencyKey,
    };
  }
}

/** Not for this plugin: nothing is recorded beyond the skip. */
export function skip() {
  return { tag: "skip" };
}

/** Nothing to do; the reason is recorded with the job. */
export function drop(reason) {
  return { tag: "drop", val: String(reason) };
}

/** Deliver these requests (each on its own, with retries). */
export function deliver(...requests) {
  const list = requests.flat();
  for (const r of list) {
    if (!(r instanceof Request)) throw PluginError.fatal("deliver(...) takes Request objects");
  }
  return { tag: "deliver", val: list };
}

// ---- config, kv, log --------------------------------------------------------

let configCache = { host: null, entries: null };

function configEntries() {
  const h = current();
  // The manifest's values cannot change under a running instance: read once.
  if (configCache.host !== h) configCache = { host: h, entries: new Map(h.configEntries()) };
  return configCache.entries;
}

/** The manifest's `[config]` values. */
export const config = {
  /** One value, or null when the manifest does not set it. */
  get(key) {
    return configEntries().get(key) ?? null;
  },
  /** One value; a missing (or empty) one is a fatal PluginError naming the key. */
  require(key) {
    const v = configEntries().get(key);
    if (v === undefined || v === null || v === "") {
      throw PluginError.fatal(`config \`${key}\` is not set: add it under [config] in plugin.toml`);
    }
    return v;
  },
  /** Every value, as an object. */
  entries() {
    return Object.fromEntries(configEntries());
  },
};

function kvError(e, op, key) {
  const payload = e?.payload;
  if (!payload || typeof payload.tag !== "string") throw e;
  const err = new PluginError(`key-value store: ${op} \`${key}\`: ${payload.val ?? payload.tag}`, payload.tag === "unavailable");
  err.kvError = payload.tag;
  return err;
}

/**
 * This plugin's key-value store, kept by the host across calls and restarts.
 * A failure is a PluginError: retryable when the store is unavailable, fatal
 * when a value is too large or the quota is used up (`error.kvError` says which).
 */
export const kv = {
  /** The value of `key` as bytes, or null when absent or expired. */
  get(key) {
    try {
      return current().kvGet(key) ?? null;
    } catch (e) {
      throw kvError(e, "get", key);
    }
  },
  /** The value of `key` as text, or null. */
  getText(key) {
    const v = kv.get(key);
    return v === null ? null : decoder.decode(v);
  },
  /** The value of `key` parsed as JSON, or null; not JSON is a fatal PluginError. */
  getJson(key) {
    const v = kv.getText(key);
    if (v === null) return null;
    try {
      return JSON.parse(v);
    } catch (e) {
      throw PluginError.fatal(`kv value \`${key}\` is not JSON: ${e.message}`);
    }
  },
  /** Sets `key` (string or bytes); `{ ttlMs }` makes it expire. */
  set(key, value, { ttlMs } = {}) {
    try {
      current().kvSet(key, bytes(value), ttlMs === undefined || ttlMs === null ? undefined : BigInt(ttlMs));
    } catch (e) {
      throw kvError(e, "set", key);
    }
  },
  /** Sets `key` to `value` as JSON; `{ ttlMs }` makes it expire. */
  setJson(key, value, options) {
    kv.set(key, JSON.stringify(value), options);
  },
  /** Removes `key`; true when it existed. */
  delete(key) {
    try {
      return Boolean(current().kvDelete(key));
    } catch (e) {
      throw kvError(e, "delete", key);
    }
  },
};

/** Logging into the daemon's log, tagged with the plugin's name. */
export const log = {
  trace: (m) => current().log("trace", String(m)),
  debug: (m) => current().log("debug", String(m)),
  info: (m) => current().log("info", String(m)),
  warn: (m) => current().log("warn", String(m)),
  error: (m) => current().log("error", String(m)),
};

// ---- outbound HTTP ----------------------------------------------------------

/** A complete response of `http.send` / `http.get`. */
export class Response {
  constructor(url, status, headers, body) {
    this.url = url;
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
  /** True for a 2xx status. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }
  /** The first header called `name` (any case), or null. */
  header(name) {
    const lower = name.toLowerCase();
    const h = this.headers.find((h) => h.name.toLowerCase() === lower);
    return h ? decoder.decode(h.value) : null;
  }
  text() {
    return decoder.decode(this.body);
  }
  /** The body as JSON; not JSON is a fatal PluginError. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw PluginError.fatal(`${this.url}: response body is not JSON: ${e.message}`);
    }
  }
  /** This response when 2xx; else a PluginError, retryable for 408, 425, 429 and 5xx. */
  errorForStatus() {
    if (this.ok) return this;
    const retryable = [408, 425, 429].includes(this.status) || this.status >= 500;
    throw new PluginError(`${this.url} answered HTTP ${this.status}`, retryable);
  }
}

/**
 * Outbound HTTP during `handle`, over `wasi:http` (the host checks every
 * request against the manifest's grants). The global `fetch` works too;
 * these helpers turn failures into PluginErrors.
 */
export const http = {
  /** The host's `fetch` (the global one in a component, canned answers under FakeHost). */
  fetch(input, init) {
    return current().fetch(input, init);
  },
  /** Sends `request` (a Request) now and reads the whole response. Any status is returned. */
  async send(request) {
    const headers = request.headers.map((h) => [h.name, decoder.decode(h.value)]);
    if (request.idempotencyKey !== undefined) headers.push(["Idempotency-Key", request.idempotencyKey]);
    let response;
    try {
      response = await current().fetch(request.url, {
        method: request.method,
        headers,
        body: request.body.length ? request.body : undefined,
      });
    } catch (e) {
      throw PluginError.retry(`${request.method} ${request.url}: fetch failed: ${e?.message ?? e}`);
    }
    const body = new Uint8Array(await response.arrayBuffer());
    const out = [];
    response.headers.forEach((value, name) => out.push({ name, value: utf8.encode(value) }));
    return new Response(request.url, response.status, out, body);
  },
  /** `GET url`, reading the whole response. */
  get(url) {
    return http.send(Request.get(url));
  },
  /** `GET url` with `Accept: application/json`; a non-2xx or non-JSON answer is a PluginError. */
  async getJson(url) {
    const r = await http.send(Request.get(url).header("Accept", "application/json"));
    return r.errorForStatus().json();
  },
};

// ---- the export -------------------------------------------------------------

function asPluginError(e) {
  if (e instanceof PluginError) return { message: e.message, retryable: e.retryable };
  // A fetch() that failed at the network level (or that the host denied:
  // StarlingMonkey reports both as a TypeError) is worth retrying.
  if (e instanceof TypeError && /fetch|network/i.test(String(e.message))) {
    return { message: `fetch failed: ${e.message}`, retryable: true };
  }
  return { message: `uncaught ${e?.name ?? "error"}: ${e?.message ?? String(e)}`, retryable: false };
}

function toWire(decision) {
  switch (decision?.tag) {
    case "skip":
      return { tag: "skip" };
    case "drop":
      return { tag: "drop", val: String(decision.val) };
    case "deliver":
      return { tag: "deliver", val: decision.val.map((r) => (r instanceof Request ? r.toWit() : r)) };
    default:
      throw PluginError.fatal("handle must return skip(), drop(reason) or deliver(...requests)");
  }
}

/**
 * Turns `{ filter?, handle }` into the `handler` export of the
 * `fieldhook:plugin/plugin@0.2.0` world:
 *
 *     export const handler = definePlugin({ filter, handle });
 *
 * `filter(event)` (default: every event) returns false to skip the event;
 * `handle(event)` returns (or resolves to) `skip()`, `drop(reason)` or
 * `deliver(...requests)`, or throws a PluginError. Any other exception is a
 * fatal error naming it.
 */
export function definePlugin({ filter, handle }) {
  if (typeof handle !== "function") throw new TypeError("definePlugin needs a handle function");
  if (filter !== undefined && typeof filter !== "function") throw new TypeError("filter must be a function");
  return {
    async handle(wire) {
      const event = new Event(wire);
      try {
        if (filter && !filter(event)) return { tag: "skip" };
        return toWire(await handle(event));
      } catch (e) {
        // componentize-js lowers a thrown `{ payload }` as result::err(payload).
        throw { payload: asPluginError(e) };
      } finally {
        // The event is a borrowed handle: drop it before returning (the
        // bindings would too, but leave it registered for a finalizer that
        // could drop a later call's handle).
        event._release();
      }
    },
  };
}
