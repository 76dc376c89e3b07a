// Used by check.mjs: install Node-RED into a cache dir, run
// a counting sink, start Node-RED on these files and wait until it is ready.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, copyFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";

export const HERE = fileURLToPath(new URL(".", import.meta.url));
export const PINNED = JSON.parse(readFileSync(join(HERE, "package.json"), "utf8")).dependencies["node-red"];

/** `npm ci` into `cache` (a fresh temp dir by default); reused when already there. */
export function install(cache = mkdtempSync(join(tmpdir(), "nr-cache-"))) {
    const pkg = join(cache, "node_modules", "node-red", "package.json");
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, "utf8")).version === PINNED) return cache;
    execFileSync("mkdir", ["-p", cache]);
    copyFileSync(join(HERE, "package.json"), join(cache, "package.json"));
    copyFileSync(join(HERE, "package-lock.json"), join(cache, "package-lock.json"));
    execFileSync("npm", ["ci", "--prefix", cache, "--no-audit", "--no-fund", "--loglevel=error"], { stdio: "inherit" });
    return cache;
}

/** A free 127.0.0.1 port. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const s = http.createServer().listen(0, "127.0.0.1", () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
        s.on("error", reject);
    });
}

/** In-process sink: answers 200 to every request and keeps what arrived. */
export async function startSink() {
    const received = [];
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
            received.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
            res.end();
        });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${server.address().port}/accounting`;
    return { url, received, close: () => new Promise((r) => server.close(r)) };
}

/** Starts Node-RED; resolves once `POST /webhook` answers 200 (flow deployed). */
export async function startNodeRed({ cache, sinkUrl, userDir = mkdtempSync(join(tmpdir(), "nr-user-")), port }) {
    port ??= await freePort();
    const t0 = performance.now();
    const child = spawn(process.execPath, [
        join(cache, "node_modules", "node-red", "red.js"),
        "--settings", join(HERE, "settings.js"),
    ], {
        env: { ...process.env, PORT: String(port), NODE_RED_USER_DIR: userDir, SINK_URL: sinkUrl },
        stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    const url = `http://127.0.0.1:${port}/webhook`;
    const deadline = Date.now() + 30000;
    for (;;) {
        if (child.exitCode !== null) throw new Error(`node-red exited (${child.exitCode}):\n${log}`);
        if (Date.now() > deadline) { child.kill(); throw new Error(`node-red not ready after 30 s:\n${log}`); }
        const status = await post(url, '{"event":"readiness.probe"}').then((r) => r.status, () => 0);
        if (status === 200) break;
        await new Promise((r) => setTimeout(r, 100));
    }
    const readyMs = performance.now() - t0;
    const stop = () => new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", resolve);
        child.kill("SIGTERM");
    });
    return { url, port, userDir, child, readyMs, log: () => log, stop };
}

/** One POST with a JSON body; resolves { status, body }. */
export function post(url, body, agent) {
    return new Promise((resolve, reject) => {
        const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
            const chunks = [];
            res.on("data", (c) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
        });
        req.on("error", reject);
        req.end(body);
    });
}
