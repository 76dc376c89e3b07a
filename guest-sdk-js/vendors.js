// Typed views of each vendor's webhook body (docs/vendors/), mirroring the
// Rust SDK's `fieldhook_guest::vendors`: the same fields (camelCase), the
// same fallbacks and the same errors. Each view checks the event's vendor
// first (`event.housecallPro()`, ...); `<vendor>.parse(body)` skips that
// check. Every failure is a fatal PluginError naming the vendor and what is
// missing. Each typed record keeps the vendor's object as `raw`.
import { PluginError } from "./errors.js";

const decoder = new TextDecoder("utf-8", { fatal: false });

/** A body that is JSON but not the documented shape (internal). */
class ShapeError extends Error {}

function describe(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "number") return `number ${v}`;
  return typeof v === "object" ? "an object" : `${typeof v} ${v}`;
}

const CHECKS = {
  str: [(v) => typeof v === "string", "a string"],
  int: [(v) => Number.isInteger(v), "an integer"],
  num: [(v) => typeof v === "number", "a number"],
  bool: [(v) => typeof v === "boolean", "a boolean"],
  id: [(v) => typeof v === "string" || Number.isInteger(v), "an id (a string or an integer)"],
  obj: [(v) => v !== null && typeof v === "object" && !Array.isArray(v), "an object"],
  list: [(v) => Array.isArray(v), "a list"],
  any: [() => true, "any value"],
};

/** `obj[key]` when it is of `type`; null when absent or null. */
function opt(obj, key, type) {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  const [ok, what] = CHECKS[type];
  if (!ok(v)) throw new ShapeError(`invalid type: ${describe(v)}, expected ${what} at \`${key}\``);
  return v;
}

/** `obj[key]`, which must be there and of `type`. */
function req(obj, key, type) {
  const v = opt(obj, key, type);
  if (v === null) throw new ShapeError(`missing field \`${key}\``);
  return v;
}

/** `obj[key]` as a list of `read(item)`, [] when absent. */
function list(obj, key, read) {
  return (opt(obj, key, "list") ?? []).map((item, i) => {
    try {
      return read(item);
    } catch (e) {
      if (e instanceof ShapeError) throw new ShapeError(`${e.message} in \`${key}[${i}]\``);
      throw e;
    }
  });
}

function object(v, what) {
  if (!CHECKS.obj[0](v)) throw new ShapeError(`invalid type: ${describe(v)}, expected ${what}`);
  return v;
}

/** The first value of `keys` that is a string, or null. */
function firstString(obj, ...keys) {
  for (const k of keys) if (typeof obj[k] === "string") return obj[k];
  return null;
}

/** What the error messages say about a vendor. */
class Vendor {
  constructor(id, name, shape) {
    this.id = id;
    this.name = name;
    this.shape = shape;
  }

  /** `body` (bytes, text or parsed JSON) read with `read(json)`. */
  parse(body, read) {
    let json = body;
    if (body instanceof Uint8Array || typeof body === "string") {
      try {
        json = JSON.parse(typeof body === "string" ? body : decoder.decode(body));
      } catch (e) {
        throw PluginError.fatal(`${this.name} body is not JSON: ${e.message}; expected ${this.shape}`);
      }
    }
    return this.read(json, read);
  }

  read(json, read) {
    try {
      return read(json);
    } catch (e) {
      if (!(e instanceof ShapeError)) throw e;
      throw PluginError.fatal(`${this.name} body does not have the expected shape: ${e.message}; expected ${this.shape}`);
    }
  }

  error(what) {
    return PluginError.fatal(`${this.name} ${what}`);
  }

  /** Checks `event` comes from this vendor, then reads its body; errors name the event. */
  view(event, read) {
    if (event.vendor !== this.id) {
      throw PluginError.fatal(
        `event ${event.id}: not a ${this.name} event: it arrived on source \`${event.source}\` of vendor \`${event.vendor}\`, not \`${this.id}\``,
      );
    }
    try {
      const parsed = event._parsedBody();
      if (parsed.error) throw PluginError.fatal(`${this.name} body is not JSON: ${parsed.error.message}; expected ${this.shape}`);
      return this.read(parsed.value, read);
    } catch (e) {
      if (e instanceof PluginError) throw PluginError.fatal(`event ${event.id}: ${e.message}`);
      throw e;
    }
  }
}

/** Lower case, runs of other characters as one `_` (as the host writes kinds). */
function slug(text) {
  return String(text).trim().toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/_+$/, "");
}

// ---- ServiceM8 ----------------------------------------------------------------

const SM8 = new Vendor(
  "servicem8",
  "ServiceM8",
  `{"object":"job","entry":[{"changed_fields":["status"],"time":"2015-01-01 00:00:00","uuid":"..."}],"resource_url":"https://api.servicem8.com/api_1.0/job/<uuid>.json"} (object webhook) or {"event":"job.completed",...} (event webhook)`,
);

class Sm8Entry {
  constructor(raw) {
    object(raw, "an entry object");
    this.raw = raw;
    /** The record's uuid. */
    this.uuid = req(raw, "uuid", "str");
    /** When it changed, UTC `YYYY-MM-DD HH:MM:SS`. */
    this.time = opt(raw, "time", "str");
    /** Names of the fields that changed. */
    this.changedFields = list(raw, "changed_fields", (f) => {
      if (typeof f !== "string") throw new ShapeError(`invalid type: ${describe(f)}, expected a string`);
      return f;
    });
  }
  /** True when `field` is among the changed fields. */
  changed(field) {
    return this.changedFields.includes(field);
  }
}

/** A ServiceM8 webhook: object webhook (`object`, `entry`, `resourceUrl`) or event webhook (`eventName()`, `data`). */
class Sm8Notice {
  constructor(raw) {
    object(raw, "an object");
    this.raw = raw;
    this.object = opt(raw, "object", "str");
    this.entry = list(raw, "entry", (e) => new Sm8Entry(e));
    this.resourceUrl = opt(raw, "resource_url", "str");
    this.event = opt(raw, "event", "str");
    this.eventNameField = opt(raw, "eventName", "str");
    this.data = raw.data ?? null;
  }
  static parse(body) {
    const notice = SM8.parse(body, (json) => new Sm8Notice(json));
    return notice._check();
  }
  _check() {
    if (this.isObjectWebhook() || this.eventName() !== null) return this;
    if (this.object !== null && this.entry.length === 0) {
      throw SM8.error("object webhook has no `entry`: nothing says which record changed");
    }
    if (this.object === null && this.entry.length > 0) {
      throw SM8.error("object webhook has no `object`: the entries' type is unknown");
    }
    throw SM8.error("body is neither an object webhook (`object` and `entry`) nor an event webhook (`event`)");
  }
  /** True for an object webhook: `object` and at least one entry. */
  isObjectWebhook() {
    return this.object !== null && this.entry.length > 0;
  }
  /** The event webhook's name (`event` or `eventName`); null for object webhooks. */
  eventName() {
    return this.event ?? this.eventNameField;
  }
  /** The entry `event` is about: the only one, or the one whose uuid is the event's entity id. */
  entryFor(event) {
    if (this.entry.length === 1) return this.entry[0];
    const entity = event.entity;
    if (!entity) {
      throw SM8.error(`notice has ${this.entry.length} entries and event ${event.id} names no entity to pick one`);
    }
    const found = this.entry.find((e) => e.uuid === entity.id);
    if (!found) throw SM8.error(`notice has no entry with uuid \`${entity.id}\``);
    return found;
  }
  /** Where `entry`'s record can be fetched: `resourceUrl` when it fits, else `<API>/<object>/<uuid>.json`. */
  resourceUrlFor(entry) {
    if (this.resourceUrl !== null && (this.entry.length === 1 || this.resourceUrl.includes(entry.uuid))) {
      return this.resourceUrl;
    }
    if (this.object === null) return null;
    return `${servicem8.API_BASE}${this.object.toLowerCase()}/${entry.uuid}.json`;
  }
}

export const servicem8 = {
  VENDOR: "servicem8",
  API_BASE: "https://api.servicem8.com/api_1.0/",
  Notice: Sm8Notice,
  Entry: Sm8Entry,
  parse: (body) => Sm8Notice.parse(body),
  view: (event) => SM8.view(event, (json) => new Sm8Notice(json)._check()),
};

// ---- ServiceTrade ---------------------------------------------------------------

const ST = new Vendor(
  "servicetrade",
  "ServiceTrade",
  `{"messageId":"...","timestamp":"<seconds>","data":[{"action":"updated","timestamp":<seconds>,"entity":{"type":"job","id":1,"uri":"..."},"changeset":[{"field":"status","oldValue":..,"newValue":..}]}]}`,
);

class StFieldChange {
  constructor(raw) {
    object(raw, "a changeset object");
    this.raw = raw;
    this.field = req(raw, "field", "str");
    /** Value before the change, as sent (null for null or absent). */
    this.oldValue = raw.oldValue ?? null;
    /** Value after the change, as sent (null for null or absent). */
    this.newValue = raw.newValue ?? null;
  }
  /** The old value when it is a string, else null. */
  oldStr() {
    return typeof this.oldValue === "string" ? this.oldValue : null;
  }
  /** The new value when it is a string, else null. */
  newStr() {
    return typeof this.newValue === "string" ? this.newValue : null;
  }
}

class StChange {
  constructor(raw) {
    object(raw, "a change object");
    this.raw = raw;
    /** `created`, `updated` or `deleted`. */
    this.action = req(raw, "action", "str");
    /** When it changed: Unix seconds. */
    this.timestamp = opt(raw, "timestamp", "int");
    this.userId = opt(raw, "userId", "int");
    const entity = req(raw, "entity", "obj");
    /** `{ kind, id, uri }`: `kind` is the entity's `type`; `id` as sent (a number). */
    this.entity = { kind: req(entity, "type", "str"), id: req(entity, "id", "id"), uri: opt(entity, "uri", "str") };
    this.changeset = list(raw, "changeset", (c) => new StFieldChange(c));
  }
  /** The change of `field`, or null. */
  field(name) {
    return this.changeset.find((c) => c.field === name) ?? null;
  }
  /** True when this is `action` of an entity of type `kind`, ignoring case. */
  is(kind, action) {
    return this.entity.kind.toLowerCase() === kind.toLowerCase() && this.action.toLowerCase() === action.toLowerCase();
  }
}

/** One ServiceTrade message: a batch of entity changes. */
class StMessage {
  constructor(raw) {
    object(raw, "an object");
    this.raw = raw;
    this.messageId = req(raw, "messageId", "str");
    /** When the message was sent: Unix seconds as text. */
    this.timestamp = opt(raw, "timestamp", "str");
    req(raw, "data", "list");
    this.data = list(raw, "data", (c) => new StChange(c));
  }
  static parse(body) {
    return ST.parse(body, (json) => new StMessage(json));
  }
  /** The message timestamp as Unix seconds, or null. */
  timestampSecs() {
    const n = Number.parseInt(this.timestamp ?? "", 10);
    return Number.isNaN(n) ? null : n;
  }
  /** The change `event` is about: the only one, or the one matching its entity and kind. */
  changeFor(event) {
    if (this.data.length === 1) return this.data[0];
    const entity = event.entity;
    if (!entity) {
      throw ST.error(`message has ${this.data.length} changes and event ${event.id} names no entity to pick one`);
    }
    const action = event.kind.includes(".") ? event.kind.slice(event.kind.indexOf(".") + 1) : "";
    const matches = this.data.filter((c) => slug(c.entity.kind) === entity.kind && String(c.entity.id) === entity.id);
    const found = matches.find((c) => slug(c.action) === action) ?? matches[0];
    if (!found) throw ST.error(`message ${this.messageId} has no change of ${entity.kind} ${entity.id}`);
    return found;
  }
}

export const servicetrade = {
  VENDOR: "servicetrade",
  Message: StMessage,
  Change: StChange,
  FieldChange: StFieldChange,
  parse: (body) => StMessage.parse(body),
  view: (event) => ST.view(event, (json) => new StMessage(json)),
};

// ---- Housecall Pro ------------------------------------------------------------

const HCP = new Vendor(
  "housecall-pro",
  "Housecall Pro",
  `{"event":"job.completed","event_occurred_at":"...","company_id":"...","job":{...}} or {"id":"...","event":"job.completed","created_at":"...","data":{...}}`,
);

function trimmed(v) {
  return typeof v === "string" ? v.trim() : "";
}

class HcpCustomer {
  constructor(raw) {
    object(raw, "a customer object");
    this.raw = raw;
    this.id = opt(raw, "id", "str");
    this.firstName = opt(raw, "first_name", "str");
    this.lastName = opt(raw, "last_name", "str");
    this.company = opt(raw, "company", "str");
    this.email = opt(raw, "email", "str");
    this.mobileNumber = opt(raw, "mobile_number", "str");
  }
  /** `first last` (trimmed; either may be missing), else `company`; null when neither gives text. */
  displayName() {
    const name = [trimmed(this.firstName), trimmed(this.lastName)].filter(Boolean).join(" ");
    if (name) return name;
    return trimmed(this.company) || null;
  }
}

class HcpLineItem {
  constructor(raw) {
    object(raw, "a line item object");
    this.raw = raw;
    this.id = opt(raw, "id", "str");
    this.name = opt(raw, "name", "str");
    this.quantity = opt(raw, "quantity", "num");
    /** Price of one, cents. */
    this.unitPrice = opt(raw, "unit_price", "int");
  }
}

const customerOf = (raw) => (raw.customer === undefined || raw.customer === null ? null : new HcpCustomer(raw.customer));

/** A job record (amounts in cents). */
class HcpJob {
  constructor(raw) {
    this.raw = raw;
    this.id = req(raw, "id", "str");
    this.invoiceNumber = opt(raw, "invoice_number", "id");
    this.description = opt(raw, "description", "str");
    this.workStatus = opt(raw, "work_status", "str");
    this.totalAmount = opt(raw, "total_amount", "int");
    this.outstandingBalance = opt(raw, "outstanding_balance", "int");
    this.customer = customerOf(raw);
    this.lineItems = list(raw, "line_items", (l) => new HcpLineItem(l));
    this.createdAt = opt(raw, "created_at", "str");
    this.updatedAt = opt(raw, "updated_at", "str");
  }
}

/** An invoice record (amounts in cents). */
class HcpInvoice {
  constructor(raw) {
    this.raw = raw;
    this.id = req(raw, "id", "str");
    this.invoiceNumber = opt(raw, "invoice_number", "id");
    this.jobId = opt(raw, "job_id", "str");
    this.amount = opt(raw, "amount", "int");
    this.status = opt(raw, "status", "str");
    this.paidAt = opt(raw, "paid_at", "str");
    this.customer = customerOf(raw);
  }
}

const isObject = (v) => CHECKS.obj[0](v);

/** A Housecall Pro webhook envelope. */
class HcpEnvelope {
  constructor(raw) {
    object(raw, "a Housecall Pro envelope object");
    this.raw = raw;
    /** `job.completed`, `customer.updated`, ... */
    this.event = req(raw, "event", "str");
    this.eventOccurredAt = opt(raw, "event_occurred_at", "str");
    this.companyId = opt(raw, "company_id", "str");
    /** The envelope id (second envelope shape). */
    this.id = opt(raw, "id", "id");
    this.createdAt = opt(raw, "created_at", "str");
    /** The record of the second envelope shape, as sent. */
    this.data = raw.data ?? null;
  }
  static parse(body) {
    return HCP.parse(body, (json) => new HcpEnvelope(json));
  }
  /** The kind of record the event carries: its first part (`job` for `job.appointment.rescheduled`). */
  recordType() {
    return this.event.split(".")[0];
  }
  /** `event_occurred_at`, else `created_at`. */
  occurredAt() {
    return this.eventOccurredAt ?? this.createdAt;
  }
  /** The record as sent: the object under the event's first part, else under `data.<part>`, else `data`. */
  record() {
    return this.recordUnder(this.recordType());
  }
  /** The object under `key`, else `data.<key>`, else `data`. */
  recordUnder(key) {
    const found = [this.raw[key], isObject(this.data) ? this.data[key] : undefined, this.data].find(isObject);
    if (!found) throw HCP.error(`\`${this.event}\` body has no \`${key}\` object (nor \`data\`)`);
    return found;
  }
  _typed(kind, Type) {
    if (this.recordType() !== kind) {
      throw HCP.error(`\`${this.event}\` carries a ${this.recordType()} record, not a ${kind}`);
    }
    const record = this.record();
    try {
      return new Type(record);
    } catch (e) {
      if (e instanceof ShapeError) throw HCP.error(`\`${this.event}\` record does not have the expected shape: ${e.message}`);
      throw e;
    }
  }
  /** The job of a `job.*` event. */
  job() { return this._typed("job", HcpJob); }
  /** The invoice of an `invoice.*` event. */
  invoice() { return this._typed("invoice", HcpInvoice); }
  /** The customer of a `customer.*` event. */
  customer() { return this._typed("customer", HcpCustomer); }
}

export const housecallPro = {
  VENDOR: "housecall-pro",
  Envelope: HcpEnvelope,
  Job: HcpJob,
  Invoice: HcpInvoice,
  Customer: HcpCustomer,
  LineItem: HcpLineItem,
  parse: (body) => HcpEnvelope.parse(body),
  view: (event) => HCP.view(event, (json) => new HcpEnvelope(json)),
};

// ---- ServiceTitan / Scheduling Pro ---------------------------------------------

const STN = new Vendor(
  "servicetitan",
  "ServiceTitan",
  `{"eventId":"...","eventType":"job.completed","tenantId":123,"data":{"id":...}}`,
);

class StnContact {
  constructor(raw) {
    object(raw, "a contact object");
    this.raw = raw;
    this.firstName = opt(raw, "firstName", "str");
    this.lastName = opt(raw, "lastName", "str");
    this.name = opt(raw, "name", "str");
    this.email = opt(raw, "email", "str");
    this.phone = opt(raw, "phone", "str");
    this.zip = opt(raw, "zip", "str");
  }
  /** `name`, else `firstName lastName` (either may be missing); null without a name. */
  displayName() {
    if (trimmed(this.name)) return this.name;
    const name = [trimmed(this.firstName), trimmed(this.lastName)].filter(Boolean).join(" ");
    return name || null;
  }
}

/** A Scheduling Pro session (not published: the fields integrators have seen; the rest is in `raw`). */
class StnSession {
  constructor(raw) {
    object(raw, "an object");
    this.raw = raw;
    const sessionId = opt(raw, "sessionId", "id");
    /** The session id: `sessionId`, else `id` (null when neither). */
    this.id = sessionId ?? opt(raw, "id", "id");
    /** The job the booking created (Session Completed). */
    this.jobId = opt(raw, "jobId", "id");
    const customer = raw.customer ?? null;
    const contact = raw.contact ?? null;
    /** Contact details: `customer`, else `contact`. */
    this.contact = customer !== null ? new StnContact(customer) : contact !== null ? new StnContact(contact) : null;
    this.serviceName = opt(raw, "serviceName", "str");
    this.campaign = opt(raw, "campaign", "str");
    this.notes = opt(raw, "notes", "str");
  }
  /** The session id; an error naming both fields when neither is given. */
  requireId() {
    if (this.id === null) throw STN.error("Scheduling Pro session has no `data.sessionId` or `data.id`");
    return this.id;
  }
}

/** A ServiceTitan webhook envelope. */
class StnEnvelope {
  constructor(raw) {
    object(raw, "an object");
    this.raw = raw;
    this.eventId = opt(raw, "eventId", "id");
    /** Event type as sent: `eventType`, else `eventName`, `event`, `type`. */
    this.eventType = firstString(raw, "eventType", "eventName", "event", "type");
    this.tenantId = opt(raw, "tenantId", "id");
    /** The first of `occurredAt`, `occurredOn`, `createdOn`, `timestamp` that is a string. */
    this.occurredAt = firstString(raw, "occurredAt", "occurredOn", "createdOn", "timestamp");
    this.data = raw.data ?? null;
  }
  _check() {
    if (this.eventType === null) throw STN.error("body has no `eventType` (nor `eventName`, `event`, `type`)");
    return this;
  }
  static parse(body) {
    return STN.parse(body, (json) => new StnEnvelope(json))._check();
  }
  /** `"SessionCompleted"`, `"QualifiedAbandonedSession"` (names matched loosely), or null. */
  schedulingPro() {
    const squashed = this.eventType.toLowerCase().replace(/[^a-z0-9]/g, "");
    if (squashed === "sessioncompleted" || squashed === "schedulingsessioncompleted") return "SessionCompleted";
    if (
      ["qualifiedabandonedsession", "schedulingqualifiedabandonedsession", "sessionabandoned", "schedulingsessionabandoned"].includes(
        squashed,
      )
    ) {
      return "QualifiedAbandonedSession";
    }
    return null;
  }
  /** `data.id` when it is an id, else null. */
  dataId() {
    const id = isObject(this.data) ? this.data.id : undefined;
    return typeof id === "string" || Number.isInteger(id) ? id : null;
  }
  /** `data`; an error when absent. */
  requireData() {
    if (this.data === null) throw STN.error(`\`${this.eventType}\` body has no \`data\``);
    return this.data;
  }
  /** The Scheduling Pro session in `data`; an error for other events. */
  session() {
    if (this.schedulingPro() === null) {
      throw STN.error(
        `\`${this.eventType}\` is not a Scheduling Pro event (Session Completed, Qualified Abandoned Session)`,
      );
    }
    const data = this.requireData();
    try {
      return new StnSession(data);
    } catch (e) {
      if (e instanceof ShapeError) throw STN.error(`\`${this.eventType}\` data does not have the expected shape: ${e.message}`);
      throw e;
    }
  }
}

export const servicetitan = {
  VENDOR: "servicetitan",
  Envelope: StnEnvelope,
  Session: StnSession,
  Contact: StnContact,
  parse: (body) => StnEnvelope.parse(body),
  view: (event) => STN.view(event, (json) => new StnEnvelope(json)._check()),
};

// ---- Jobber -----------------------------------------------------------------

const JOBBER = new Vendor(
  "jobber",
  "Jobber",
  `{"data":{"webHookEvent":{"topic":"JOB_UPDATE","appId":"...","accountId":"...","itemId":"...","occurredAt":"..."}}}`,
);

/** A Jobber webhook: the `data.webHookEvent` object. */
class JobberNotice {
  constructor(raw) {
    object(raw, "an object");
    const hook = req(req(raw, "data", "obj"), "webHookEvent", "obj");
    this.raw = raw;
    this.topic = req(hook, "topic", "str");
    this.appId = opt(hook, "appId", "str");
    this.accountId = opt(hook, "accountId", "str");
    this.itemId = req(hook, "itemId", "str");
    this.occurredAt = opt(hook, "occurredAt", "str");
  }
  static parse(body) {
    return JOBBER.parse(body, (json) => new JobberNotice(json));
  }
  /** The entity, lower case: `job` for `JOB_UPDATE`, `payment_record` for `PAYMENT_RECORD_CREATE`. */
  entityType() {
    const i = this.topic.lastIndexOf("_");
    return (i > 0 ? this.topic.slice(0, i) : this.topic).toLowerCase();
  }
  /** What happened, as in the topic: `UPDATE` for `JOB_UPDATE`. */
  action() {
    const i = this.topic.lastIndexOf("_");
    return i >= 0 ? this.topic.slice(i + 1) : this.topic;
  }
}

export const jobber = {
  VENDOR: "jobber",
  Notice: JobberNotice,
  parse: (body) => JobberNotice.parse(body),
  view: (event) => JOBBER.view(event, (json) => new JobberNotice(json)),
};

// ---- Standard Webhooks ----------------------------------------------------------

const SW = new Vendor("standard-webhooks", "Standard Webhooks", `{"type":"invoice.paid","timestamp":"...","data":{...}}`);

/** A Standard Webhooks payload. */
class SwPayload {
  constructor(raw) {
    object(raw, "an object");
    this.raw = raw;
    /** The event type (`type`): `invoice.paid`, ... */
    this.kind = req(raw, "type", "str");
    this.timestamp = opt(raw, "timestamp", "str");
    this.data = raw.data ?? null;
    /** The `webhook-id` (or `svix-id`) header, when read from an event. */
    this.webhookId = null;
  }
  static parse(body) {
    return SW.parse(body, (json) => new SwPayload(json));
  }
  /** `data`; an error saying it is missing. */
  requireData() {
    if (this.data === null) throw SW.error(`\`${this.kind}\` payload has no \`data\``);
    return this.data;
  }
}

export const standardWebhooks = {
  VENDOR: "standard-webhooks",
  Payload: SwPayload,
  parse: (body) => SwPayload.parse(body),
  view: (event) => {
    const payload = SW.view(event, (json) => new SwPayload(json));
    payload.webhookId = event.header("webhook-id") ?? event.header("svix-id");
    return payload;
  },
};
