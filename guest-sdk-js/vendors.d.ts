// Typings of the typed vendor views (vendors.js), mirroring the Rust SDK's
// `fieldhook_guest::vendors` with camelCase names. Every view keeps the
// vendor's object as `raw`. `parse(body)` takes bytes, text or parsed JSON.
import type { Event } from "./fieldhook";

type Body = Uint8Array | string | unknown;
/** An id some vendors send as a string and others as an integer. */
export type Id = string | number;

export namespace servicem8 {
  const VENDOR: "servicem8";
  const API_BASE: "https://api.servicem8.com/api_1.0/";
  class Entry {
    raw: any;
    uuid: string;
    /** UTC `YYYY-MM-DD HH:MM:SS`. */
    time: string | null;
    changedFields: string[];
    changed(field: string): boolean;
  }
  /** An object webhook (`object`, `entry`, `resourceUrl`) or an event webhook (`eventName()`, `data`). */
  class Notice {
    raw: any;
    object: string | null;
    entry: Entry[];
    resourceUrl: string | null;
    event: string | null;
    eventNameField: string | null;
    data: any;
    static parse(body: Body): Notice;
    isObjectWebhook(): boolean;
    eventName(): string | null;
    /** The only entry, or the one whose uuid is the event's entity id. */
    entryFor(event: Event): Entry;
    /** `resourceUrl` when it fits the entry, else `<API_BASE><object>/<uuid>.json`. */
    resourceUrlFor(entry: Entry): string | null;
  }
  function parse(body: Body): Notice;
}

export namespace servicetrade {
  const VENDOR: "servicetrade";
  class FieldChange {
    raw: any;
    field: string;
    oldValue: any;
    newValue: any;
    oldStr(): string | null;
    newStr(): string | null;
  }
  class Change {
    raw: any;
    /** `created`, `updated` or `deleted`. */
    action: string;
    /** Unix seconds. */
    timestamp: number | null;
    userId: number | null;
    /** `kind` is the entity's `type`. */
    entity: { kind: string; id: Id; uri: string | null };
    changeset: FieldChange[];
    field(name: string): FieldChange | null;
    is(kind: string, action: string): boolean;
  }
  class Message {
    raw: any;
    messageId: string;
    /** Unix seconds as text. */
    timestamp: string | null;
    data: Change[];
    static parse(body: Body): Message;
    timestampSecs(): number | null;
    /** The only change, or the one matching the event's entity and kind. */
    changeFor(event: Event): Change;
  }
  function parse(body: Body): Message;
}

export namespace housecallPro {
  const VENDOR: "housecall-pro";
  class Customer {
    constructor(raw: object);
    raw: any;
    id: string | null;
    firstName: string | null;
    lastName: string | null;
    company: string | null;
    email: string | null;
    mobileNumber: string | null;
    /** `first last` (trimmed), else `company`, else null. */
    displayName(): string | null;
  }
  class LineItem {
    raw: any;
    id: string | null;
    name: string | null;
    quantity: number | null;
    /** Cents. */
    unitPrice: number | null;
  }
  /** Amounts in cents. */
  class Job {
    raw: any;
    id: string;
    invoiceNumber: Id | null;
    description: string | null;
    workStatus: string | null;
    totalAmount: number | null;
    outstandingBalance: number | null;
    customer: Customer | null;
    lineItems: LineItem[];
    createdAt: string | null;
    updatedAt: string | null;
  }
  /** Amounts in cents. */
  class Invoice {
    raw: any;
    id: string;
    invoiceNumber: Id | null;
    jobId: string | null;
    amount: number | null;
    status: string | null;
    paidAt: string | null;
    customer: Customer | null;
  }
  class Envelope {
    raw: any;
    event: string;
    eventOccurredAt: string | null;
    companyId: string | null;
    id: Id | null;
    createdAt: string | null;
    data: any;
    static parse(body: Body): Envelope;
    /** The event's first part: `job` for `job.appointment.rescheduled`. */
    recordType(): string;
    /** `event_occurred_at`, else `created_at`. */
    occurredAt(): string | null;
    /** The object under the event's first part, else `data.<part>`, else `data`. */
    record(): any;
    recordUnder(key: string): any;
    job(): Job;
    invoice(): Invoice;
    customer(): Customer;
  }
  function parse(body: Body): Envelope;
}

export namespace servicetitan {
  const VENDOR: "servicetitan";
  class Contact {
    raw: any;
    firstName: string | null;
    lastName: string | null;
    name: string | null;
    email: string | null;
    phone: string | null;
    zip: string | null;
    displayName(): string | null;
  }
  class Session {
    raw: any;
    /** `sessionId`, else `id`. */
    id: Id | null;
    jobId: Id | null;
    /** `customer`, else `contact`. */
    contact: Contact | null;
    serviceName: string | null;
    campaign: string | null;
    notes: string | null;
    requireId(): Id;
  }
  class Envelope {
    raw: any;
    eventId: Id | null;
    /** `eventType`, else `eventName`, `event`, `type`. */
    eventType: string;
    tenantId: Id | null;
    /** The first of `occurredAt`, `occurredOn`, `createdOn`, `timestamp`. */
    occurredAt: string | null;
    data: any;
    static parse(body: Body): Envelope;
    schedulingPro(): "SessionCompleted" | "QualifiedAbandonedSession" | null;
    dataId(): Id | null;
    requireData(): any;
    session(): Session;
  }
  function parse(body: Body): Envelope;
}

export namespace jobber {
  const VENDOR: "jobber";
  class Notice {
    raw: any;
    topic: string;
    appId: string | null;
    accountId: string | null;
    itemId: string;
    occurredAt: string | null;
    static parse(body: Body): Notice;
    /** `job` for `JOB_UPDATE`, `payment_record` for `PAYMENT_RECORD_CREATE`. */
    entityType(): string;
    /** `UPDATE` for `JOB_UPDATE`. */
    action(): string;
  }
  function parse(body: Body): Notice;
}

export namespace standardWebhooks {
  const VENDOR: "standard-webhooks";
  class Payload {
    raw: any;
    /** The payload's `type`. */
    kind: string;
    timestamp: string | null;
    data: any;
    /** `webhook-id` (or `svix-id`) header, when read from an event. */
    webhookId: string | null;
    static parse(body: Body): Payload;
    requireData(): any;
  }
  function parse(body: Body): Payload;
}
