// Node-RED settings for the fieldhook peer benchmark.
//
// Environment:
//   PORT               port the webhook listens on (127.0.0.1 only)      required
//   NODE_RED_USER_DIR  writable scratch dir for this run (runtime config) required
//   SINK_URL           where accounting records are POSTed (read by flows.json)
//   NODE_RED_FLOW_FILE flows file (default: flows.json next to this file)
//
// The editor and admin API are off (httpAdminRoot: false); the only HTTP
// route is the flow's `POST /webhook`. Console logging is at warn level; a
// second logger prints the single line `fieldhook-peer: flows started` on
// stdout once the flow is running.
const path = require("path");

function required(name) {
    const value = process.env[name];
    if (!value) {
        console.error(`fieldhook-peer: environment variable ${name} is required`);
        process.exit(2);
    }
    return value;
}

module.exports = {
    uiHost: "127.0.0.1",
    uiPort: Number(required("PORT")),
    userDir: path.resolve(required("NODE_RED_USER_DIR")),
    flowFile: path.resolve(process.env.NODE_RED_FLOW_FILE || path.join(__dirname, "flows.json")),
    flowFilePretty: true,
    // Log texts (and so the readiness line below) in English.
    lang: "en-US",

    // Nothing in the flow has credentials; never prompt or generate a key.
    credentialSecret: false,

    // No editor, no admin API, no static files: only the flow's own route.
    httpAdminRoot: false,
    httpNodeRoot: "/",
    httpStatic: false,
    disableEditor: true,

    // Nothing phones home, nothing is installed at runtime.
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
    functionExternalModules: false,

    // Default in-memory context; nothing is persisted.
    contextStorage: { default: { module: "memory" } },

    logging: {
        console: { level: "warn", metrics: false, audit: false },
        // Readiness line: only this one info message is printed.
        ready: {
            level: "info",
            metrics: false,
            audit: false,
            handler: function () {
                return function (msg) {
                    if (msg.msg === "Started flows") {
                        console.log("fieldhook-peer: flows started");
                    }
                };
            },
        },
    },
};
