//! `fieldhook plugin new`: scaffolds a plugin that builds and runs as is.

use std::path::Path;

use anyhow::{Context, bail};

use super::Lang;

/// The SDKs and the contract, embedded at build time (`build.rs`): a
/// scaffold carries its own copy in `sdk/` and `wit/<version>/`, so it builds on
/// any machine with the language's tool chain, without a fieldhook checkout.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));
}

const SAMPLE_EVENT: &str = r#"{
  "source": "hcp",
  "vendor": "housecall-pro",
  "kind": "job.completed",
  "entity": { "kind": "job", "id": "job_7f3e" },
  "occurred_at": "2026-11-20T15:04:05Z",
  "headers": { "content-type": "application/json" },
  "body": {
    "event": "job.completed",
    "event_occurred_at": "2026-11-20T15:04:05Z",
    "job": {
      "id": "job_7f3e",
      "invoice_number": "1042",
      "total_amount": 24500,
      "customer": { "id": "cus_d892", "first_name": "Dana", "last_name": "Reyes" }
    }
  }
}
"#;

pub fn new(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        bail!("plugin name `{name}` must be non-empty and use only a-z, 0-9, `-` and `_`");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!(
            "{} already exists; choose another name or --dir",
            root.display()
        );
    }
    let mut files = match lang {
        Lang::Rust => rust(name),
        Lang::Js => js(name),
        Lang::Python => python(name),
    };
    let sdk: Vec<(String, String)> = match lang {
        Lang::Rust => embedded::RUST_SDK
            .iter()
            .filter(|(p, _)| *p != "Cargo.toml")
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .chain([("Cargo.toml".to_owned(), rust_sdk_manifest())])
            .collect(),
        Lang::Js => copy(embedded::JS_SDK),
        Lang::Python => copy(embedded::PY_SDK),
    };
    files.extend(sdk.into_iter().map(|(p, t)| (format!("sdk/{p}"), t)));
    // The contract the SDK builds, where the SDK looks for it (`../wit/V`).
    let (wit_version, wit) = match lang {
        Lang::Rust => ("0.3", embedded::WIT_0_3),
        Lang::Js | Lang::Python => ("0.2", embedded::WIT_0_2),
    };
    files.extend(
        wit.iter()
            .map(|(p, t)| (format!("wit/{wit_version}/{p}"), (*t).to_owned())),
    );
    for (path, text) in &files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("created {} ({} files):", root.display(), files.len());
    for (path, _) in files
        .iter()
        .filter(|(p, _)| !p.starts_with("wit/") && !p.starts_with("sdk/"))
    {
        println!("  {path}");
    }
    println!("  sdk/       the fieldhook SDK this plugin builds with");
    println!("  wit/{wit_version}/   the contract, fieldhook:plugin@{wit_version}.0");
    println!(
        "next: see {}/README.md to test, build, check and run it",
        root.display()
    );
    Ok(())
}

fn copy(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

/// The Rust SDK's manifest outside the fieldhook workspace: the workspace's
/// inherited values spelled out.
fn rust_sdk_manifest() -> String {
    format!(
        r#"[package]
name = "fieldhook-guest"
version = "{}"
edition = "2024"
publish = false

[dependencies]
wit-bindgen = "0.61"
serde = {{ version = "1", features = ["derive"] }}
serde_json = {{ version = "1", features = ["raw_value"] }}
"#,
        env!("CARGO_PKG_VERSION")
    )
}

fn manifest(name: &str, component: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
version = "0.1.0"
component = "{component}"

# Which events the daemon sends this plugin.
[[subscriptions]]
source = "*"
kinds = ["job.completed"]

[limits]
memory_mb = 64
timeout_ms = 5000

# What the plugin may send: deliveries and its own requests are refused
# unless a rule here grants them. `fieldhook plugin check` warns about a
# [config] URL no rule covers.
[[http]]
host = "books.example.com"
methods = ["POST"]
path = "/api/jobs"
{extra}
[config]
endpoint = "https://books.example.com/api/jobs"
"#
    )
}

fn readme(name: &str, build: &str, component: &str) -> String {
    format!(
        r#"# {name}

A fieldhook plugin: on `job.completed` it posts a short record of the job to
the `endpoint` of its manifest's `[config]`.

```sh
{build}
fieldhook plugin build           # or the tool chain's own command, above
fieldhook plugin check {component} --manifest plugin.toml
fieldhook plugin run {component} --manifest plugin.toml --event sample-event.json
```

`sdk/` is the fieldhook SDK and `wit/` the contract this plugin builds
against, copied by `fieldhook plugin new`.

To install it, copy `plugin.toml` and the component into the daemon's plugins
directory (`plugins/{name}/`; set `component` in `plugin.toml` to the
component's file name there). The daemon loads it within a second, no restart.
"#
    )
}

fn rust(name: &str) -> Vec<(String, String)> {
    let krate = name.replace('-', "_");
    let component = format!("target/wasm32-wasip2/release/{krate}.wasm");
    vec![
        (
            "Cargo.toml".into(),
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
fieldhook-guest = {{ path = "sdk" }}
serde_json = "1"

# A plugin is its own workspace, wherever it is created.
[workspace]

[profile.release]
strip = "debuginfo"
"#
            ),
        ),
        (
            "src/lib.rs".into(),
            format!(
                r##"//! {name}: posts a short record of each completed job to `endpoint`.

use fieldhook_guest::{{Decision, Event, Plugin, PluginError, Request, config, log}};
use serde_json::json;

struct Handler;

impl Plugin for Handler {{
    fn filter(event: &Event) -> bool {{
        event.kind() == "job.completed"
    }}

    fn handle(event: Event) -> Result<Decision, PluginError> {{
        let body = event.body_json()?;
        let job = &body["job"];
        if !job.is_object() {{
            return Ok(Decision::drop("the body has no `job` object"));
        }}
        log::info(format!("job {{}} completed", job["id"]));
        let request = Request::post(config::require("endpoint")?)
            .json(&json!({{
                "job_id": job["id"],
                "invoice_number": job["invoice_number"],
                "total_cents": job["total_amount"],
                "event_id": event.id(),
            }}))
            .idempotency_key(format!("{name}:{{}}", event.id()));
        Ok(Decision::deliver([request]))
    }}
}}

fieldhook_guest::export_plugin!(Handler);

#[cfg(test)]
mod tests {{
    use super::*;
    use fieldhook_guest::testing;

    #[test]
    fn a_completed_job_becomes_one_post_to_the_endpoint() {{
        testing::set_config([("endpoint", "https://books.example.com/api/jobs")]);
        let event = testing::event("job.completed", br#"{{"job":{{"id":"job_1","total_amount":100}}}}"#.to_vec());
        match Handler::handle(event).unwrap() {{
            Decision::Deliver(requests) => assert_eq!(requests.len(), 1),
            other => panic!("expected a delivery, got {{other:?}}"),
        }}
    }}
}}
"##
            ),
        ),
        ("plugin.toml".into(), manifest(name, &component, "")),
        ("sample-event.json".into(), SAMPLE_EVENT.into()),
        (".gitignore".into(), "/target\n".into()),
        (
            "README.md".into(),
            readme(
                name,
                "rustup target add wasm32-wasip2   # once\ncargo test                        # unit tests, natively\ncargo build --release --target wasm32-wasip2",
                &component,
            ),
        ),
    ]
}

fn js(name: &str) -> Vec<(String, String)> {
    vec![
        (
            "plugin.js".into(),
            format!(
                r#"// {name}: posts a short record of each completed job to `endpoint`.
import {{ config, definePlugin, deliver, drop, log, Request }} from "@fieldhook/guest-sdk";

export const handler = definePlugin({{
  // Reads only the kind: other events never copy the body.
  filter: (event) => event.kind === "job.completed",

  handle(event) {{
    const job = event.json().job;
    if (job === null || typeof job !== "object") return drop("the body has no `job` object");
    log.info(`job ${{job.id}} completed`);
    const record = {{
      job_id: job.id ?? null,
      invoice_number: job.invoice_number ?? null,
      total_cents: job.total_amount ?? null,
      event_id: event.id,
    }};
    return deliver(Request.post(config.require("endpoint")).json(record).withIdempotencyKey(`{name}:${{event.id}}`));
  }},
}});
"#
            ),
        ),
        (
            "plugin.test.mjs".into(),
            r#"// Unit tests, no build: npm test
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { event, eventFromSample, FakeHost } from "@fieldhook/guest-sdk/testing";
import { handler } from "./plugin.js";

const host = () => new FakeHost({ config: { endpoint: "https://books.example.com/api/jobs" } });
const sample = JSON.parse(readFileSync(new URL("sample-event.json", import.meta.url), "utf8"));

test("a completed job becomes one POST to the endpoint", async () => {
  const result = await host().run(handler, eventFromSample(sample));
  assert.equal(result.type, "deliver");
  assert.equal(result.requests[0].url, "https://books.example.com/api/jobs");
  assert.equal(result.requests[0].json.job_id, "job_7f3e");
});

test("other kinds are skipped, bodies without a job dropped", async () => {
  assert.deepEqual(await host().run(handler, event({ kind: "job.updated" })), { type: "skip" });
  assert.equal((await host().run(handler, event({ kind: "job.completed", body: {} }))).type, "drop");
});
"#
            .into(),
        ),
        (
            "package.json".into(),
            format!(
                r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {{
    "build": "node sdk/build.mjs plugin.js -o plugin.wasm",
    "test": "node --import ./sdk/register.mjs --test plugin.test.mjs"
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "0.23.0",
    "@bytecodealliance/preview2-shim": "0.25.0"
  }}
}}
"#
            ),
        ),
        (
            "plugin.toml".into(),
            manifest(
                name,
                "plugin.wasm",
                "\n# A JS component carries its engine: reuse warm instances.\n[runtime]\ninstances = \"reuse\"\n",
            ),
        ),
        ("sample-event.json".into(), SAMPLE_EVENT.into()),
        (".gitignore".into(), "/plugin.wasm\n/node_modules\n".into()),
        (
            "README.md".into(),
            readme(
                name,
                "npm install     # once: componentize-js, the build tool\nnpm test        # unit tests through the SDK's fake host, no build\nnpm run build",
                "plugin.wasm",
            ),
        ),
    ]
}

fn python(name: &str) -> Vec<(String, String)> {
    vec![
        (
            "app.py".into(),
            format!(
                r#""""{name}: posts a short record of each completed job to `endpoint`."""

import fieldhook
from fieldhook import Event, Request, config, deliver, drop, log


class Handler(fieldhook.Plugin):
    def accepts(self, event: Event) -> bool:
        # Reads only the kind: other events never copy the body.
        return event.kind == "job.completed"

    def decide(self, event: Event) -> fieldhook.Decision:
        job = event.json().get("job")
        if not isinstance(job, dict):
            return drop("the body has no `job` object")
        log.info(f"job {{job.get('id')}} completed")
        record = {{
            "job_id": job.get("id"),
            "invoice_number": job.get("invoice_number"),
            "total_cents": job.get("total_amount"),
            "event_id": event.id,
        }}
        request = Request.post(config.require("endpoint")).json(record)
        return deliver(request.idempotency_key(f"{name}:{{event.id}}"))
"#
            ),
        ),
        (
            "test_app.py".into(),
            r#""""Unit tests, no build: PYTHONPATH=sdk python3 -m unittest"""

import unittest
from pathlib import Path

from fieldhook.testing import FakeHost, event, event_from_sample

import app

SAMPLE = str(Path(__file__).resolve().parent / "sample-event.json")


class AppTest(unittest.TestCase):
    def host(self) -> FakeHost:
        return FakeHost(config={"endpoint": "https://books.example.com/api/jobs"})

    def test_a_completed_job_becomes_one_post_to_the_endpoint(self):
        result = self.host().run(app.Handler(), event_from_sample(SAMPLE))
        self.assertEqual(result.type, "deliver")
        self.assertEqual(result.requests[0].url, "https://books.example.com/api/jobs")
        self.assertEqual(result.requests[0].json["job_id"], "job_7f3e")

    def test_other_kinds_are_skipped_and_bodies_without_a_job_dropped(self):
        self.assertEqual(self.host().run(app.Handler(), event(kind="job.updated")).type, "skip")
        self.assertEqual(self.host().run(app.Handler(), event(kind="job.completed", body={})).type, "drop")


if __name__ == "__main__":
    unittest.main()
"#
            .to_owned(),
        ),
        (
            "plugin.toml".into(),
            manifest(
                name,
                "plugin.wasm",
                "\n# A Python component carries its interpreter: reuse warm instances.\n[runtime]\ninstances = \"reuse\"\n",
            ),
        ),
        ("sample-event.json".into(), SAMPLE_EVENT.into()),
        (".gitignore".into(), "/plugin.wasm\n__pycache__/\n".into()),
        (
            "README.md".into(),
            readme(
                name,
                "pip install componentize-py==0.25.0   # once: the build tool\nPYTHONPATH=sdk python3 -m unittest     # unit tests through the SDK's fake host, no build\npython3 sdk/build.py . -o plugin.wasm",
                "plugin.wasm",
            ),
        ),
    ]
}
