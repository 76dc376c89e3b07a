// Maps a Housecall Pro `job.completed` webhook to an accounting record, as
// plugins/accounting-sync does. Output 1 -> http request (to the sink),
// output 2 -> http response (answered 200 at once, nothing delivered).
const body = msg.payload;
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const skip = (why) => {
    if (why) node.error(why, msg);
    msg.payload = "";
    return [null, msg];
};
// Text fields: a string or absent/null; anything else is a shape error.
const text = (o, k) => {
    const v = o[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== "string") throw new Error(`\`${k}\` is not a string`);
    return v;
};
const orNull = (v) => (v === undefined ? null : v);

// 1. Filter on the kind.
if (!isObject(body) || body.event !== "job.completed") return skip();

try {
    // 2. The job: under `job`, else `data.job`, else `data`.
    const data = isObject(body.data) ? body.data : null;
    const job = isObject(body.job) ? body.job
        : data && isObject(data.job) ? data.job
        : data;
    if (!job) return skip("body has no `job` object (nor `data`)");
    if (job.customer != null && !isObject(job.customer)) throw new Error("`customer` is not an object");
    const c = job.customer || null;
    if (job.id === undefined || job.id === null) return skip("job object has no `id`");

    // Customer name: "first last" (trimmed; either may be missing), else name, else company.
    let name = null;
    if (c) {
        const first = (text(c, "first_name") || "").trim();
        const last = (text(c, "last_name") || "").trim();
        const plain = text(c, "name"), company = text(c, "company");
        name = first && last ? `${first} ${last}` : first || last || (plain ?? company);
    }
    // When it happened: `event_occurred_at`, else `created_at`.
    const occurred = text(body, "event_occurred_at")
        ?? (typeof body.created_at === "string" ? body.created_at : null);

    // Node-RED stores nothing: a fresh id per request (time + random, 26 chars).
    const eventId = "evt_" + Date.now().toString(36).padStart(10, "0")
        + Math.random().toString(36).slice(2, 10).padEnd(8, "0")
        + Math.random().toString(36).slice(2, 10).padEnd(8, "0");

    // Fields in the plugin's (alphabetical) order.
    msg.payload = {
        currency: "USD",
        customer: {
            email: c ? orNull(c.email) : null,
            id: c ? orNull(c.id) : null,
            name: name,
        },
        external_id: job.id,
        fieldhook_event_id: eventId,
        invoice_number: orNull(job.invoice_number),
        occurred_at: occurred,
        source: "hcp",
        total_cents: orNull(job.total_amount),
    };
    // 3. The sink URL is the http request node's `${SINK_URL}`.
    msg.headers = {
        "content-type": "application/json",
        "idempotency-key": "accounting-sync:" + eventId,
    };
    return [msg, null];
} catch (err) {
    return skip("job does not have the expected shape: " + err.message);
}
