// Benchmark fixture: the same filter/map logic as overhead-rust.
import { definePlugin, deliver, config, Request } from "@fieldhook/guest-sdk";

export const handler = definePlugin({
  filter: (event) => event.kind === "job.completed",
  handle(event) {
    const body = event.json();
    const job = body.job ?? {};
    const customer = job.customer ?? {};
    const name = `${customer.first_name ?? ""} ${customer.last_name ?? ""}`.trim();
    const record = {
      external_id: job.id ?? null,
      invoice_number: job.invoice_number ?? null,
      customer: name,
      total_cents: job.total_amount ?? null,
      occurred_at: body.event_occurred_at ?? null,
      event_id: event.id,
    };
    return deliver(
      Request.post(config.require("endpoint")).json(record).withIdempotencyKey(`overhead:${event.id}`),
    );
  },
});
