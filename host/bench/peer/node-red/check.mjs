// Self-check: node check.mjs   (exit 0 = pass)
// Env: NODE_RED_CACHE=<dir> reuses/creates that install (default: fresh temp dir);
//      SAMPLE=<file> the Housecall Pro job.completed body (default: the copy here).
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { HERE, PINNED, install, startSink, startNodeRed, post } from "./harness.mjs";
import { flows } from "./build-flows.mjs";

const sample = JSON.parse(readFileSync(process.env.SAMPLE || join(HERE, "../../../../examples/quickstart/sample-job-completed.json"), "utf8"));
const withJob = (id, patch = {}) => JSON.stringify({ ...sample, ...patch, job: { ...sample.job, id } });

// What accounting-sync sends for the sample (its byte-for-byte test), with this job id.
const expected = (id, eventId) => JSON.stringify({
    currency: "USD",
    customer: { email: "dana.whitfield@example.com", id: "cus_4b1e0d9a77c2405e", name: "Dana Whitfield" },
    external_id: id,
    fieldhook_event_id: eventId,
    invoice_number: "1042",
    occurred_at: "2025-06-12T21:47:09Z",
    source: "hcp",
    total_cents: 24500,
});

let nr, sink, cache, failed = false;
try {
    // flows.json carries map-job.js verbatim.
    assert.deepEqual(JSON.parse(readFileSync(join(HERE, "flows.json"), "utf8")),
        flows(readFileSync(join(HERE, "map-job.js"), "utf8")), "flows.json is stale: run node build-flows.mjs");

    cache = install(process.env.NODE_RED_CACHE || undefined);
    sink = await startSink();
    nr = await startNodeRed({ cache, sinkUrl: sink.url });
    console.log(`node-red ${PINNED} ready in ${nr.readyMs.toFixed(0)} ms on ${nr.url}`);

    const ids = ["job_check_0001", "job_check_0002"];
    for (const id of ids) assert.equal((await post(nr.url, withJob(id))).status, 200, "job.completed answered 200");
    const before = sink.received.length;
    assert.equal((await post(nr.url, withJob("job_check_0003", { event: "job.scheduled" }))).status, 200, "job.scheduled answered 200");
    // A completed job without an id: answered 200, logged, nothing delivered.
    assert.equal((await post(nr.url, JSON.stringify({ ...sample, job: { ...sample.job, id: null } }))).status, 200, "job without id answered 200");
    await new Promise((r) => setTimeout(r, 300)); // nothing late may arrive

    assert.equal(sink.received.length, 2, `2 records at the sink (got ${sink.received.length})`);
    assert.equal(before, 2, "the job.scheduled event and the id-less job delivered nothing");
    sink.received.forEach((r, i) => {
        assert.equal(r.method, "POST");
        assert.equal(r.url, "/accounting");
        assert.match(r.headers["content-type"], /^application\/json/);
        const eventId = JSON.parse(r.body).fieldhook_event_id;
        assert.match(eventId, /^evt_[0-9a-z]{26}$/, "generated event id");
        assert.equal(r.headers["idempotency-key"], `accounting-sync:${eventId}`, "Idempotency-Key header");
        assert.equal(r.body, expected(ids[i], eventId), "record is the accounting-sync mapping, byte for byte");
    });
    assert.notEqual(JSON.parse(sink.received[0].body).fieldhook_event_id, JSON.parse(sink.received[1].body).fieldhook_event_id, "event ids differ");
    assert.match(nr.log(), /job object has no `id`/, "the id-less job was logged");
    console.log("PASS: 2 records delivered with Idempotency-Key, job.scheduled and id-less job delivered nothing");
} catch (err) {
    failed = true;
    console.error("FAIL:", err.message);
    if (nr) console.error("--- node-red log ---\n" + nr.log());
} finally {
    await nr?.stop();
    await sink?.close();
    if (nr) rmSync(nr.userDir, { recursive: true, force: true });
    if (cache && !process.env.NODE_RED_CACHE) rmSync(cache, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
