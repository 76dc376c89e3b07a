// The component entry of the fieldhook JavaScript SDK: wires the imports of
// the `fieldhook:plugin/plugin@0.2.0` world into the SDK core and exports
// the plugin-facing API. Plugins import "@fieldhook/guest-sdk"; build.mjs
// points that at this file. Under plain Node (unit tests) the same API comes
// from index.js, with FakeHost (testing.js) as the host.
import * as witConfig from "fieldhook:plugin/config@0.2.0";
import * as witKv from "fieldhook:plugin/kv@0.2.0";
import * as witLog from "fieldhook:plugin/log@0.2.0";
import { useHost } from "./core.js";

useHost({
  log: (level, message) => witLog.log(level, message),
  configEntries: () => witConfig.entries(),
  kvGet: (key) => witKv.get(key),
  kvSet: (key, value, ttlMs) => witKv.set(key, value, ttlMs),
  kvDelete: (key) => witKv.delete(key),
  // StarlingMonkey's fetch, over wasi:http/outgoing-handler.
  fetch: (input, init) => globalThis.fetch(input, init),
});

export * from "./core.js";
export * as vendors from "./vendors.js";
