// ServiceTrade job status -> chat/notification webhook.
//
// ServiceTrade notifies every create/update/delete of the subscribed
// entities, several times per user edit. The host makes one event per
// `data[]` item of a message; this plugin keeps only jobs and appointments
// whose changeset changes `status` and posts one message per transition to
// `config.webhook_url` (Slack/Teams/Google Chat incoming webhooks all accept
// a JSON body with `text`; the structured fields ride along).
import { config, definePlugin, deliver, drop, log, PluginError, Request } from "@fieldhook/guest-sdk";

const WATCHED = new Set(["job", "appointment"]);

export const handler = definePlugin({
  filter: (event) => WATCHED.has(event.entity?.kind) && event.kind.endsWith(".updated"),

  handle(event) {
    const change = changeOf(event);
    const status = change.changeset?.find((c) => c.field === "status");
    if (!status) return drop(`${event.kind} ${event.entity.id}: no status change`);
    const from = label(status.oldValue);
    const to = label(status.newValue);
    if (from === to) return drop(`${event.kind} ${event.entity.id}: status unchanged (${to})`);

    const { type, id, uri } = change.entity;
    const noun = type === "job" ? "Job" : "Appointment";
    const link = uri ? ` (${uri})` : "";
    const message = {
      text: `${noun} ${id}: ${from} → ${to}${link}`,
      entity: { type, id: String(id), uri: uri ?? null },
      old_status: status.oldValue ?? null,
      new_status: status.newValue ?? null,
      changed_at: change.timestamp ?? null,
      user_id: change.userId ?? null,
      message_id: event.json().messageId ?? null,
      fieldhook_event_id: event.id,
    };
    log.info(`${type} ${id}: ${from} -> ${to}`);
    // The same transition at the same time is the same notification, even
    // when ServiceTrade redelivers it under a new message id.
    const key = `st-status:${type}:${id}:${from}->${to}:${change.timestamp ?? event.id}`;
    return deliver(Request.post(config.require("webhook_url")).json(message).withIdempotencyKey(key));
  },
});

/** The `data[]` item this event was made from (the body is the whole message). */
function changeOf(event) {
  const items = event.json().data;
  if (!Array.isArray(items)) throw PluginError.fatal("ServiceTrade message has no data[] array");
  const action = event.kind.split(".").slice(1).join(".");
  const item = items.find(
    (i) =>
      String(i?.entity?.id) === event.entity.id &&
      String(i?.entity?.type).toLowerCase() === event.entity.kind &&
      String(i?.action).toLowerCase() === action,
  );
  if (!item) throw PluginError.fatal(`no data[] item for ${event.entity.kind} ${event.entity.id} (${action})`);
  return item;
}

function label(value) {
  return value === null || value === undefined || value === "" ? "(none)" : String(value);
}
