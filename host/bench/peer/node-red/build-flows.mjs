// Regenerates flows.json from map-job.js (the function node's source):
//   node build-flows.mjs
// check.mjs fails if flows.json and map-job.js disagree.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const func = readFileSync(here("map-job.js"), "utf8");

export function flows(func) {
    return [
        { id: "fh_tab", type: "tab", label: "fieldhook peer: hcp job.completed -> accounting", disabled: false, info: "" },
        {
            id: "fh_in", type: "http in", z: "fh_tab", name: "POST /webhook",
            url: "/webhook", method: "post", upload: false, swaggerDoc: "",
            x: 140, y: 100, wires: [["fh_map"]],
        },
        {
            id: "fh_map", type: "function", z: "fh_tab", name: "filter + map to accounting record",
            func, outputs: 2, timeout: 0, noerr: 0, initialize: "", finalize: "", libs: [],
            x: 380, y: 100, wires: [["fh_post"], ["fh_out"]],
        },
        {
            id: "fh_post", type: "http request", z: "fh_tab", name: "POST to sink",
            method: "POST", ret: "txt", paytoqs: "ignore", url: "${SINK_URL}",
            tls: "", persist: true, proxy: "", insecureHTTPParser: false,
            authType: "", senderr: false, headers: [],
            x: 640, y: 80, wires: [["fh_out"]],
        },
        {
            id: "fh_out", type: "http response", z: "fh_tab", name: "answer webhook",
            statusCode: "", headers: {},
            x: 860, y: 100, wires: [],
        },
    ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
    writeFileSync(here("flows.json"), JSON.stringify(flows(func), null, 4) + "\n");
    console.log("wrote flows.json");
}
