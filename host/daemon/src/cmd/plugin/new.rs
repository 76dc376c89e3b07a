//! `fieldhook plugin new`: scaffolds a plugin that builds and runs as is.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::Lang;

/// The contract, shipped with JS and Python plugins (their tool chains read
/// WIT files; Rust plugins get it through the SDK).
const WIT: &[(&str, &str)] = &[
    (
        "plugin.wit",
        include_str!("../../../../../wit/0.1/plugin.wit"),
    ),
    (
        "deps/cli/cli.wit",
        include_str!("../../../../../wit/0.1/deps/cli/cli.wit"),
    ),
    (
        "deps/clocks/clocks.wit",
        include_str!("../../../../../wit/0.1/deps/clocks/clocks.wit"),
    ),
    (
        "deps/filesystem/filesystem.wit",
        include_str!("../../../../../wit/0.1/deps/filesystem/filesystem.wit"),
    ),
    (
        "deps/http/http.wit",
        include_str!("../../../../../wit/0.1/deps/http/http.wit"),
    ),
    (
        "deps/io/io.wit",
        include_str!("../../../../../wit/0.1/deps/io/io.wit"),
    ),
    (
        "deps/random/random.wit",
        include_str!("../../../../../wit/0.1/deps/random/random.wit"),
    ),
    (
        "deps/sockets/sockets.wit",
        include_str!("../../../../../wit/0.1/deps/sockets/sockets.wit"),
    ),
];

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

pub fn new(name: &str, lang: Lang, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<()> {
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
    let files = match lang {
        Lang::Rust => rust(name, &sdk_path(sdk)?),
        Lang::Js => with_wit(js(name)),
        Lang::Python => with_wit(python(name)),
    };
    for (path, text) in &files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("created {} ({} files):", root.display(), files.len());
    for (path, _) in files.iter().filter(|(p, _)| !p.starts_with("wit/")) {
        println!("  {path}");
    }
    println!(
        "next: see {}/README.md to build, run and check it",
        root.display()
    );
    Ok(())
}

/// The Rust SDK: the one given, else the one of the checkout this binary
/// was built from.
fn sdk_path(sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidate = match sdk {
        Some(p) => p.to_owned(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk"),
    };
    candidate.join("Cargo.toml").is_file().then_some(()).with_context(|| {
        format!(
            "the fieldhook-guest SDK is not at {}; pass --sdk PATH (the guest-sdk/ directory of a fieldhook checkout)",
            candidate.display()
        )
    })?;
    Ok(std::fs::canonicalize(&candidate)?)
}

fn with_wit(mut files: Vec<(String, String)>) -> Vec<(String, String)> {
    files.extend(
        WIT.iter()
            .map(|(p, t)| (format!("wit/{p}"), (*t).to_owned())),
    );
    files
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
fieldhook plugin check {component} --manifest plugin.toml
fieldhook plugin run {component} --manifest plugin.toml --event sample-event.json
```

To install it, copy `plugin.toml` and the component into the daemon's plugins
directory (`plugins/{name}/`; set `component` in `plugin.toml` to the
component's file name there). The daemon loads it within a second, no restart.
"#
    )
}

fn rust(name: &str, sdk: &Path) -> Vec<(String, String)> {
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
fieldhook-guest = {{ path = "{sdk}" }}
serde_json = "1"

# A plugin is its own workspace, wherever it is created.
[workspace]

[profile.release]
strip = "debuginfo"
"#,
                sdk = sdk.display()
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
// Built into a component by componentize-js (`npm run build`).
import {{ get }} from "fieldhook:plugin/config@0.1.0";
import {{ log }} from "fieldhook:plugin/log@0.1.0";

const utf8 = new TextEncoder();

export const handler = {{
  filter(event) {{
    return event.kind === "job.completed";
  }},

  // Returning is `ok`; throwing `{{ message, retryable }}` is `err`.
  handle(event) {{
    const body = JSON.parse(new TextDecoder().decode(event.body));
    if (!body.job) {{
      return {{ tag: "drop", val: "the body has no `job` object" }};
    }}
    const endpoint = get("endpoint");
    if (!endpoint) {{
      throw {{ message: "config.endpoint is not set", retryable: false }};
    }}
    log("info", `job ${{body.job.id}} completed`);
    const record = {{
      job_id: body.job.id,
      invoice_number: body.job.invoice_number,
      total_cents: body.job.total_amount,
      event_id: event.id,
    }};
    return {{
      tag: "deliver",
      val: [{{
        method: "POST",
        url: endpoint,
        headers: [{{ name: "content-type", value: utf8.encode("application/json") }}],
        body: utf8.encode(JSON.stringify(record)),
        idempotencyKey: `{name}:${{event.id}}`,
      }}],
    }};
  }},
}};
"#
            ),
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
    "build": "jco componentize plugin.js --wit wit --world-name plugin --out plugin.wasm"
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "*",
    "@bytecodealliance/jco": "*"
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
        (".gitignore".into(), "/node_modules\n/plugin.wasm\n".into()),
        (
            "README.md".into(),
            readme(name, "npm install\nnpm run build", "plugin.wasm"),
        ),
    ]
}

fn python(name: &str) -> Vec<(String, String)> {
    vec![
        (
            "app.py".into(),
            format!(
                r#"# {name}: posts a short record of each completed job to `endpoint`.
# Built into a component by componentize-py (see README.md).
import json

from wit_world import exports
from wit_world.imports import config, log, types
from wit_world.types import Err


class Handler(exports.Handler):
    def filter(self, event: types.Event) -> bool:
        return event.kind == "job.completed"

    def handle(self, event: types.Event) -> types.Decision:
        body = json.loads(bytes(event.body))
        job = body.get("job")
        if not isinstance(job, dict):
            return types.Decision_Drop("the body has no `job` object")
        endpoint = config.get("endpoint")
        if endpoint is None:
            raise Err(types.PluginError(message="config.endpoint is not set", retryable=False))
        log.log(log.Level.INFO, f"job {{job.get('id')}} completed")
        record = {{
            "job_id": job.get("id"),
            "invoice_number": job.get("invoice_number"),
            "total_cents": job.get("total_amount"),
            "event_id": event.id,
        }}
        return types.Decision_Deliver([
            types.OutboundRequest(
                method="POST",
                url=endpoint,
                headers=[types.Header(name="content-type", value=b"application/json")],
                body=json.dumps(record).encode(),
                idempotency_key=f"{name}:{{event.id}}",
            )
        ])
"#
            ),
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
        (".gitignore".into(), "/plugin.wasm\n/wit_world\n".into()),
        (
            "README.md".into(),
            readme(
                name,
                "pip install componentize-py\ncomponentize-py --wit-path wit --world plugin componentize app -o plugin.wasm",
                "plugin.wasm",
            ),
        ),
    ]
}
