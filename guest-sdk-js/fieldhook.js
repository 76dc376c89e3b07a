// fieldhook guest SDK for JavaScript: event access, decisions, requests,
// config and log. Plugins import it as "@fieldhook/guest-sdk"; build.mjs
// bundles it into the component (componentize-js only sees the plugin's
// own directory). The WIT contract is ../wit/0.1/plugin.wit.
import * as witConfig from "fieldhook:plugin/config@0.1.0";
import * as witLog from "fieldhook:plugin/log@0.1.0";

const utf8 = new TextEncoder();
const text = new TextDecoder("utf-8", { fatal: false });

/** A failure to handle an event; throw it from `handle`. */
export class PluginError extends Error {
  constructor(message, retryable = false) {
    super(message);
    this.name = "PluginError";
    this.retryable = retryable;
  }
  /** Running again later may succeed (a fetch timed out, a 503). */
  static retry(message) {
    return new PluginError(message, true);
  }
  /** Running again never will (the payload is not what the plugin handles). */
  static fatal(message) {
    return new PluginError(message, false);
  }
}

/** A verified webhook as the host stored it, with helpers over the raw record. */
export class Event {
  constructor(raw) {
    this.raw = raw;
    this.id = raw.id;
    this.source = raw.source;
    this.vendor = raw.vendor;
    this.kind = raw.kind;
    this.entity = raw.entity ?? null;
    this.receivedAtMs = Number(raw.receivedAtMs);
    this.occurredAt = raw.occurredAt ?? null;
    this.attempt = raw.attempt;
    this.headers = raw.headers;
    this.body = raw.body;
    this._json = undefined;
  }
  /** First value of a header (case-insensitive name), as text, or null. */
  header(name) {
    const lower = name.toLowerCase();
    const h = this.headers.find((h) => h.name.toLowerCase() === lower);
    return h ? text.decode(h.value) : null;
  }
  /** The body as UTF-8 text. */
  text() {
    return text.decode(this.body);
  }
  /** The body parsed as JSON (parsed once); a non-JSON body is a fatal PluginError. */
  json() {
    if (this._json === undefined) {
      try {
        this._json = JSON.parse(this.text());
      } catch (e) {
        throw PluginError.fatal(`event ${this.id}: body is not JSON (${e.message})`);
      }
    }
    return this._json;
  }
}

/** An HTTP request for the host to deliver after `handle` returns. */
export class Request {
  constructor(method, url) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw PluginError.fatal(`request URL \`${url}\` is not an absolute URL`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw PluginError.fatal(`request URL \`${url}\` is not http or https`);
    }
    this.method = method.toUpperCase();
    this.url = url;
    this.headers = [];
    this.body = new Uint8Array();
    this.idempotencyKey = undefined;
  }
  static get(url) { return new Request("GET", url); }
  static post(url) { return new Request("POST", url); }
  static put(url) { return new Request("PUT", url); }
  static patch(url) { return new Request("PATCH", url); }
  static delete(url) { return new Request("DELETE", url); }
  /** Sets a header, replacing any of the same name. */
  header(name, value) {
    const lower = name.toLowerCase();
    this.headers = this.headers.filter((h) => h.name.toLowerCase() !== lower);
    this.headers.push({ name, value: typeof value === "string" ? utf8.encode(value) : value });
    return this;
  }
  /** Sets the body (string or bytes). */
  setBody(body) {
    this.body = typeof body === "string" ? utf8.encode(body) : body;
    return this;
  }
  /** Sets a JSON body and `Content-Type: application/json` unless one is set. */
  json(value) {
    this.body = utf8.encode(JSON.stringify(value));
    if (!this.headers.some((h) => h.name.toLowerCase() === "content-type")) {
      this.header("Content-Type", "application/json");
    }
    return this;
  }
  /** Sent as `Idempotency-Key`; the host derives one when unset. */
  withIdempotencyKey(key) {
    this.idempotencyKey = key;
    return this;
  }
  toWit() {
    return {
      method: this.method,
      url: this.url,
      headers: this.headers,
      body: this.body,
      idempotencyKey: this.idempotencyKey,
    };
  }
}

/** Deliver these requests (each on its own, with retries). */
export function deliver(...requests) {
  return { tag: "deliver", val: requests.flat() };
}

/** Nothing to do; the reason is recorded with the job. */
export function drop(reason) {
  return { tag: "drop", val: String(reason) };
}

/** The manifest's `[config]` values. */
export const config = {
  /** One value, or null when the manifest does not set it. */
  get(key) {
    return witConfig.get(key) ?? null;
  },
  /** One value; a missing one is a fatal PluginError naming the key. */
  require(key) {
    const v = witConfig.get(key);
    if (v === undefined || v === null || v === "") {
      throw PluginError.fatal(`config \`${key}\` is not set: add it under [config] in plugin.toml`);
    }
    return v;
  },
  /** Every value, as an object. */
  entries() {
    return Object.fromEntries(witConfig.entries());
  },
};

/** Logging into the daemon's log, tagged with the plugin's name. */
export const log = {
  trace: (m) => witLog.log("trace", String(m)),
  debug: (m) => witLog.log("debug", String(m)),
  info: (m) => witLog.log("info", String(m)),
  warn: (m) => witLog.log("warn", String(m)),
  error: (m) => witLog.log("error", String(m)),
};

function asPluginError(e) {
  if (e instanceof PluginError) return { message: e.message, retryable: e.retryable };
  // A fetch() that failed at the network level is worth retrying.
  if (e instanceof TypeError && /fetch/i.test(String(e.message))) {
    return { message: `fetch failed: ${e.message}`, retryable: true };
  }
  return { message: `uncaught ${e?.name ?? "error"}: ${e?.message ?? String(e)}`, retryable: false };
}

function checkDecision(d) {
  if (d && (d.tag === "drop" || d.tag === "deliver")) {
    if (d.tag === "deliver") {
      d.val = d.val.map((r) => (r instanceof Request ? r.toWit() : r));
    }
    return d;
  }
  throw PluginError.fatal("handle must return deliver(...) or drop(reason)");
}

/**
 * Turns `{ filter?, handle }` into the `handler` export of the
 * `fieldhook:plugin/plugin` world. `filter(event)` returns a boolean
 * (default: every event); `handle(event)` returns (or resolves to)
 * `deliver(...)` or `drop(reason)`, or throws a PluginError.
 *
 *     export const handler = definePlugin({ filter, handle });
 */
export function definePlugin({ filter, handle }) {
  if (typeof handle !== "function") throw new TypeError("definePlugin needs a handle function");
  return {
    filter(raw) {
      if (!filter) return true;
      try {
        return Boolean(filter(new Event(raw)));
      } catch (e) {
        log.warn(`filter threw, event dropped: ${e?.message ?? e}`);
        return false;
      }
    },
    async handle(raw) {
      try {
        return checkDecision(await handle(new Event(raw)));
      } catch (e) {
        // componentize-js lowers a thrown { payload } as result::err(payload).
        throw { payload: asPluginError(e) };
      }
    },
  };
}
