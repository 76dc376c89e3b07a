// Typings for the fieldhook JavaScript guest SDK (`fieldhook.js`) and the
// event record of the `fieldhook:plugin@0.1.0` WIT contract.

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
  url?: string;
}

/** The event record exactly as the WIT `event` lowers into JavaScript. */
export interface RawEvent {
  id: string;
  source: string;
  vendor: string;
  kind: string;
  entity?: EntityRef;
  receivedAtMs: bigint;
  occurredAt?: string;
  attempt: number;
  headers: Header[];
  body: Uint8Array;
}

/** A verified webhook as the host stored it. */
export declare class Event {
  constructor(raw: RawEvent);
  readonly raw: RawEvent;
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
  readonly headers: Header[];
  readonly body: Uint8Array;
  /** First value of a header (case-insensitive), as text. */
  header(name: string): string | null;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON; throws a fatal PluginError when it is not JSON. */
  json<T = unknown>(): T;
}

/** A failure to handle an event. */
export declare class PluginError extends Error {
  constructor(message: string, retryable?: boolean);
  readonly retryable: boolean;
  static retry(message: string): PluginError;
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

/** An HTTP request the host delivers after `handle` returns. */
export declare class Request {
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
  header(name: string, value: string | Uint8Array): this;
  setBody(body: string | Uint8Array): this;
  json(value: unknown): this;
  withIdempotencyKey(key: string): this;
  toWit(): OutboundRequest;
}

/** The WIT `decision` variant. */
export type Decision =
  | { tag: "drop"; val: string }
  | { tag: "deliver"; val: Array<OutboundRequest | Request> };

export declare function deliver(...requests: Array<Request | Request[]>): Decision;
export declare function drop(reason: string): Decision;

export declare const config: {
  get(key: string): string | null;
  require(key: string): string;
  entries(): Record<string, string>;
};

export declare const log: {
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
};

export interface PluginDefinition {
  /** Cheap first look; false drops the event. Default: every event. */
  filter?(event: Event): boolean;
  /** Decide what to do; may `await fetch(...)` (policed by the host). */
  handle(event: Event): Decision | Promise<Decision>;
}

/** The `handler` export of the `fieldhook:plugin/plugin` world. */
export interface Handler {
  filter(event: RawEvent): boolean;
  handle(event: RawEvent): Promise<Decision>;
}

export declare function definePlugin(definition: PluginDefinition): Handler;

// ---- Typed payloads of the vendors (see docs/vendors) ----

/** ServiceTrade webhook message; one event per `data[]` item. */
export interface ServiceTradeMessage {
  messageId: string;
  /** Seconds since the epoch, as text. */
  timestamp: string;
  data: ServiceTradeChange[];
}

export interface ServiceTradeChange {
  action: "created" | "updated" | "deleted" | string;
  timestamp: number;
  userId?: number;
  entity: { type: string; id: number | string; uri?: string };
  changeset?: Array<{ field: string; oldValue: unknown; newValue: unknown }>;
}

/** Housecall Pro envelope: the record sits under the event's first part. */
export interface HousecallProEnvelope {
  event: string;
  event_occurred_at?: string;
  company_id?: string;
  [record: string]: unknown;
}

/** ServiceTitan / Scheduling Pro envelope (not published; what integrators read). */
export interface ServiceTitanEnvelope {
  eventId: string;
  eventType: string;
  tenantId?: number | string;
  data?: Record<string, unknown>;
}
