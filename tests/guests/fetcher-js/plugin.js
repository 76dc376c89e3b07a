// Test fixture: fetches config.url with the standard fetch during handle
// and delivers what came back. Exercises fetch -> wasi:http -> host policy.
import { config, definePlugin, deliver, Request } from "@fieldhook/guest-sdk";

export const handler = definePlugin({
  async handle(event) {
    const response = await fetch(config.require("url"), { headers: { accept: "application/json" } });
    const text = await response.text();
    return deliver(Request.post(config.require("endpoint")).json({ status: response.status, body: text }));
  },
});
