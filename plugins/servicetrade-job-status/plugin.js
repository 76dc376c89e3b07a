// ServiceTrade job status -> chat/notification webhook.
//
// ServiceTrade notifies every create/update/delete of the subscribed
// entities, several times per user edit. The host makes one event per
// `data[]` item of a message; this plugin keeps only jobs and appointments
// whose changeset changes `status` and posts one message per transition to
// `config.webhook_url` (Slack/Teams/Google Chat incoming webhooks all accept
// a JSON body with `text`; the structured fields ride along).
import { config, definePlugin, deliver, drop, log, Request } from "@fieldhook/guest-sdk";

const WATCHED = new Set(["job", "appointment"]);

export const handler = definePlugin({
  // Reads only the kind and the entity: other events never copy the body.
  filter: (event) => WATCHED.has(event.entity?.kind) && event.kind.endsWith(".updated"),

  handle(event) {
    const message = event.servicetrade();
    // The `data[]` item this event was made from (the body is the whole message).
    const change = message.changeFor(event);
    const status = change.field("status");
    if (!status) return drop(`${event.kind} ${event.entity.id}: no status change`);
    const from = label(status.oldValue);
    const to = label(status.newValue);
    if (from === to) return drop(`${event.kind} ${event.entity.id}: status unchanged (${to})`);

    const { kind: type, id, uri } = change.entity;
    const noun = type === "job" ? "Job" : "Appointment";
    const link = uri ? ` (${uri})` : "";
    const text = {
      text: `${noun} ${id}: ${from} → ${to}${link}`,
      entity: { type, id: String(id), uri },
      old_status: status.oldValue,
      new_status: status.newValue,
      changed_at: change.timestamp,
      user_id: change.userId,
      message_id: message.messageId,
      fieldhook_event_id: event.id,
    };
    log.info(`${type} ${id}: ${from} -> ${to}`);
    // The same transition at the same time is the same notification, even
    // when ServiceTrade redelivers it under a new message id.
    const key = `st-status:${type}:${id}:${from}->${to}:${change.timestamp ?? event.id}`;
    return deliver(Request.post(config.require("webhook_url")).json(text).withIdempotencyKey(key));
  },
});

function label(value) {
  return value === null || value === undefined || value === "" ? "(none)" : String(value);
}
