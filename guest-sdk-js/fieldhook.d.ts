// Typings for the fieldhook JavaScript guest SDK ("@fieldhook/guest-sdk"),
// contract `fieldhook:plugin@0.2.0` (wit/0.2/plugin.wit).
import type * as vendorViews from "./vendors";

export * as vendors from "./vendors";

/** One HTTP header. Values are bytes: vendors do send non-UTF-8. */
export interface Header {
  name: string;
  value: Uint8Array;
}

/** The record an event is about, when the vendor says. */
export interface EntityRef {
  /** Vendor's entity type, lower case: `job`, `invoice`, `appointment`. */
  kind: string;
  /** Vendor's id of the entity, as text. */
  id: string;
  /** Where the full record can be fetched, when the vendor gives it. */
  url: string | null;
}

/**
 * What the host lends for one call: the WIT `event` resource, or a fake
 * (`event()` of "@fieldhook/guest-sdk/testing") with the same methods.
 */
export interface EventSource {
  id(): string;
  source(): string;
  vendor(): string;
  kind(): string;
  entity(): { kind: string; id: string; url?: string } | undefined;
  receivedAtMs(): bigint;
  occurredAt(): string | undefined;
  attempt(): number;
  dedupeKey(): string | undefined;
  parsed(): boolean;
  coalesced(): number;
  header(name: string): Uint8Array | undefined;
  headers(): Header[];
  body(): Uint8Array;
}

/**
 * A verified webhook as the host stored it, lent for one call. Each field
 * is read from the host on first use and kept for the call; reading a field
 * not read yet after `handle` returned is an error.
 */
export declare class Event {
  constructor(source: EventSource);
  /** Host-assigned id, stable across retries and replays (`evt_...`). */
  readonly id: string;
  /** Name of the configured source it arrived on. */
  readonly source: string;
  /** Vendor of that source: `housecall-pro`, `servicetrade`, ... */
  readonly vendor: string;
  /** Normalized kind, `<entity>.<change>`; `unknown` when the payload did not say. */
  readonly kind: string;
  readonly entity: EntityRef | null;
  /** When the host received it, ms since the Unix epoch. */
  readonly receivedAtMs: number;
  /** When the vendor says it happened (vendor's own text). */
  readonly occurredAt: string | null;
  /** 1 on the first run of this plugin on this event, then 2, 3, ... */
  readonly attempt: number;
  /** The key the host deduplicated deliveries of this event on. */
  readonly dedupeKey: string | null;
  /** False when the body was not the JSON the vendor documents (stored raw). */
  readonly parsed: boolean;
  /** How many events this one stands for (more than 1 for a coalesced burst). */
  readonly coalesced: number;
  /** Every request header (copies them all; `header(name)` asks for one). */
  readonly headers: Header[];
  /** The raw request body. */
  readonly body: Uint8Array;
  /** The first header called `name` (any case), as text. */
  header(name: string): string | null;
  /** The first header called `name` (any case), as bytes. */
  headerBytes(name: string): Uint8Array | null;
  /** The body as UTF-8 text (invalid bytes replaced). */
  text(): string;
  /** The body parsed as JSON (once); a fatal PluginError when it is not JSON. */
  json<T = any>(): T;
  servicem8(): vendorViews.servicem8.Notice;
  servicetrade(): vendorViews.servicetrade.Message;
  housecallPro(): vendorViews.housecallPro.Envelope;
  servicetitan(): vendorViews.servicetitan.Envelope;
  jobber(): vendorViews.jobber.Notice;
  standardWebhooks(): vendorViews.standardWebhooks.Payload;
}

/** A failure to handle an event. */
export declare class PluginError extends Error {
  constructor(message: string, retryable?: boolean);
  readonly retryable: boolean;
  /** Set on kv failures: `unavailable` (retryable), `too-large`, `quota-exceeded`. */
  readonly kvError?: "unavailable" | "too-large" | "quota-exceeded";
  /** Running again later may succeed. */
  static retry(message: string): PluginError;
  /** Running again never will. */
  static fatal(message: string): PluginError;
}

/** The WIT `outbound-request` record. */
export interface OutboundRequest {
  method: string;
  url: string;
  headers: Header[];
  body: Uint8Array;
  idempotencyKey?: string;
}

/** An HTTP request: delivered after `handle` returns, or sent now with `http.send`. */
export declare class Request {
  /** Throws a fatal PluginError unless `url` is absolute http(s). */
  constructor(method: string, url: string);
  method: string;
  url: string;
  headers: Header[];
  body: Uint8Array;
  idempotencyKey?: string;
  static get(url: string): Request;
  static post(url: string): Request;
  static put(url: string): Request;
  static patch(url: string): Request;
  static delete(url: string): Request;
  /** Sets a header, replacing any of the same name (any case). */
  header(name: string, value: string | Uint8Array): this;
  /** Adds a header, keeping others of the same name. */
  appendHeader(name: string, value: string | Uint8Array): this;
  headerValue(name: string): string | null;
  setBody(body: string | Uint8Array): this;
  /** JSON body, and `Content-Type: application/json` unless one is set. */
  json(value: unknown): this;
  /** Sent as `Idempotency-Key`; for deliveries the host derives one when unset. */
  withIdempotencyKey(key: string): this;
  toWit(): OutboundRequest;
}

/** The WIT `decision` variant. */
export type Decision =
  | { tag: "skip" }
  | { tag: "drop"; val: string }
  | { tag: "deliver"; val: Request[] };

/** Not for this plugin. */
export declare function skip(): Decision;
/** Nothing to do; the reason is recorded with the job. */
export declare function drop(reason: string): Decision;
/** Deliver these requests, each on its own with retries. */
export declare function deliver(...requests: Array<Request | Request[]>): Decision;

export declare const config: {
  get(key: string): string | null;
  /** A missing or empty value is a fatal PluginError naming the key. */
  require(key: string): string;
  entries(): Record<string, string>;
};

export declare const kv: {
  get(key: string): Uint8Array | null;
  getText(key: string): string | null;
  getJson<T = any>(key: string): T | null;
  set(key: string, value: string | Uint8Array, options?: { ttlMs?: number }): void;
  setJson(key: string, value: unknown, options?: { ttlMs?: number }): void;
  /** True when the key existed. */
  delete(key: string): boolean;
};

export declare const log: {
  trace(message: unknown): void;
  debug(message: unknown): void;
  info(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
};

/** A complete response of `http.send` / `http.get`. */
export declare class Response {
  readonly url: string;
  readonly status: number;
  readonly headers: Header[];
  readonly body: Uint8Array;
  readonly ok: boolean;
  header(name: string): string | null;
  text(): string;
  json<T = any>(): T;
  /** This response when 2xx; else a PluginError, retryable for 408, 425, 429, 5xx. */
  errorForStatus(): this;
}

export declare const http: {
  fetch(input: string | URL, init?: RequestInit): Promise<globalThis.Response>;
  /** Any status resolves; a transport failure or denial is a retryable PluginError. */
  send(request: Request): Promise<Response>;
  get(url: string): Promise<Response>;
  getJson<T = any>(url: string): Promise<T>;
};

/** What `definePlugin` takes. */
export interface PluginDefinition {
  /** Cheap first look; false skips the event. Default: every event. */
  filter?(event: Event): boolean;
  /** Decide; may `await fetch(...)` (policed by the host). */
  handle(event: Event): Decision | Promise<Decision>;
}

/** The `handler` export of the `fieldhook:plugin/plugin@0.2.0` world. */
export interface Handler {
  handle(event: EventSource): Promise<{ tag: "skip" } | { tag: "drop"; val: string } | { tag: "deliver"; val: OutboundRequest[] }>;
}

export declare function definePlugin(definition: PluginDefinition): Handler;

/** The host the SDK talks to (set by the component entry or FakeHost). */
export interface Host {
  log(level: "trace" | "debug" | "info" | "warn" | "error", message: string): void;
  configEntries(): Array<[string, string]>;
  kvGet(key: string): Uint8Array | undefined;
  kvSet(key: string, value: Uint8Array, ttlMs: bigint | undefined): void;
  kvDelete(key: string): boolean;
  fetch(input: string | URL, init?: RequestInit): Promise<globalThis.Response>;
}
export declare function useHost(host: Host): void;
