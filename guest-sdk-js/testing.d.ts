// Typings of "@fieldhook/guest-sdk/testing" (testing.js).
import type { EventSource, Handler } from "./fieldhook";

export interface EventFields {
  id?: string;
  source?: string;
  vendor?: string;
  kind?: string;
  entity?: { kind: string; id: string | number; url?: string } | null;
  receivedAtMs?: number;
  occurredAt?: string | null;
  attempt?: number;
  dedupeKey?: string | null;
  parsed?: boolean;
  coalesced?: number;
  /** `{ name: value }` or `[{ name, value }]`. */
  headers?: Record<string, string | Uint8Array> | Array<{ name: string; value: string | Uint8Array }>;
  /** Bytes, text, or any JSON value. */
  body?: Uint8Array | string | unknown;
}

/** A fake of the host's event resource. */
export interface FakeEvent extends EventSource {
  /** The fields the plugin read, in order (`header:<name>` for single headers). */
  readonly reads: string[];
  readonly disposed: boolean;
}

export declare function event(fields?: EventFields): FakeEvent;
/** From a `fieldhook plugin run --event` sample (parsed JSON). */
export declare function eventFromSample(sample: any): FakeEvent;

export interface CannedResponse {
  method?: string;
  /** Exact, or a prefix ending in `*`. */
  url: string;
  status?: number;
  headers?: Record<string, string>;
  /** Text or bytes as is; anything else sent as JSON. */
  body?: unknown;
}

export interface DeliveredRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
  json: any;
  idempotencyKey: string | null;
}

export type RunResult =
  | { type: "skip" }
  | { type: "drop"; reason: string }
  | { type: "deliver"; requests: DeliveredRequest[] }
  | { type: "error"; message: string; retryable: boolean };

export declare class FakeHost {
  constructor(options?: {
    config?: Record<string, string>;
    kv?: Record<string, string | Uint8Array>;
    responses?: CannedResponse[];
    /** Every kv call fails with this kv-error. */
    kvFail?: "unavailable" | "too-large" | "quota-exceeded" | null;
  });
  config: Record<string, string>;
  kv: Map<string, Uint8Array>;
  kvTtl: Map<string, number>;
  logs: Array<{ level: string; message: string }>;
  requests: Array<{ method: string; url: string; headers: Record<string, string>; body: string; outcome: "canned" | "denied" }>;
  install(): this;
  /** Calls the export as the daemon would, with this host and a fake global fetch. */
  run(handler: Handler, event: EventSource): Promise<RunResult>;
}
