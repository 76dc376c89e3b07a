// Benchmark fixture: the same filter/map logic as overhead-rust.
import { config, definePlugin, deliver, Request } from "@fieldhook/guest-sdk";

const str = (v) => (typeof v === "string" ? v : "");
const field = (v, key) => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v[key] ?? null) : null);

export const handler = definePlugin({
  filter: (event) => event.kind === "job.completed",
  handle(event) {
    const body = event.json();
    const job = field(body, "job");
    const customer = field(job, "customer");
    const name = `${str(field(customer, "first_name"))} ${str(field(customer, "last_name"))}`.trim();
    const record = {
      external_id: field(job, "id"),
      invoice_number: field(job, "invoice_number"),
      customer: name,
      total_cents: field(job, "total_amount"),
      occurred_at: field(body, "event_occurred_at"),
      event_id: event.id,
    };
    return deliver(
      Request.post(config.require("endpoint")).json(record).withIdempotencyKey(`overhead:${event.id}`),
    );
  },
});
