//! Plugins written in JavaScript and Python, end to end: the real plugins of
//! `plugins/`, built with the SDKs' build scripts, installed with their own
//! manifests, driven by signed vendor webhooks through the real daemon, and
//! delivering to a fake destination on 127.0.0.1.
//!
//! The first run builds each component (30-60 s) and compiles it (15 s or
//! more); both are cached under the target dir, keyed by content.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::*;
use fieldhook_store::EventStore;
use fieldhook_store::queue::{Queue, TaskState, Topic};
use serde_json::{Value, json};

const HCP_SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";
const ST_TOKEN: &str = "st-url-token-5b0f6c2e9d1a4e7f";
const SP_KEY: &str = "st-hmac-key-0123456789abcdef0123456789abcdef";
/// Building and compiling a component can take minutes on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);

fn sample(plugin: &str, name: &str) -> String {
    let path = workspace_root()
        .join("plugins")
        .join(plugin)
        .join("samples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim_end().to_owned()
}

/// A plugin of `plugins/`, built, with its own manifest but `[config]`
/// values replaced (a missing value in `config` removes the key).
struct Plugin {
    name: &'static str,
    component: PathBuf,
    config: Vec<(&'static str, Option<String>)>,
}

impl Plugin {
    fn servicetrade_job_status(config: Vec<(&'static str, Option<String>)>) -> Self {
        let component = js_guest("plugins/servicetrade-job-status/plugin.js");
        Self {
            name: "servicetrade-job-status",
            component,
            config,
        }
    }
    fn hcp_invoice_accounting(config: Vec<(&'static str, Option<String>)>) -> Self {
        let component = py_guest("plugins/hcp-invoice-accounting");
        Self {
            name: "hcp-invoice-accounting",
            component,
            config,
        }
    }
    fn schedulingpro_crm_lead(config: Vec<(&'static str, Option<String>)>) -> Self {
        let component = py_guest("plugins/schedulingpro-crm-lead");
        Self {
            name: "schedulingpro-crm-lead",
            component,
            config,
        }
    }

    /// The plugin's own plugin.toml with the test's config values.
    fn manifest(&self) -> String {
        let path = workspace_root()
            .join("plugins")
            .join(self.name)
            .join("plugin.toml");
        // A test fixture has no manifest of its own: it takes every event.
        let text = std::fs::read_to_string(path).unwrap_or_else(|_| {
            format!(
                "name = \"{}\"\nversion = \"0.0.1\"\n[[subscriptions]]\nsource = \"*\"\n",
                self.name
            )
        });
        let mut doc: toml::Table = toml::from_str(&text).unwrap();
        let config = doc
            .entry("config")
            .or_insert_with(|| toml::Table::new().into());
        let config = config.as_table_mut().expect("[config] is a table");
        let mut grants = Vec::new();
        for (key, value) in &self.config {
            match value {
                Some(v) => {
                    // The test's destinations are on 127.0.0.1: grant exactly
                    // the configured delivery URL (its path as prefix), nothing
                    // more; `url`, the fetch target of the fetcher fixtures,
                    // stays ungranted on purpose.
                    let granted = *key != "url";
                    if let Some(rest) = v.strip_prefix("http://127.0.0.1:").filter(|_| granted) {
                        let (port, path) = rest.split_once('/').unwrap_or((rest, ""));
                        let mut rule = toml::Table::new();
                        rule.insert("scheme".into(), "http".into());
                        rule.insert("host".into(), "127.0.0.1".into());
                        rule.insert("port".into(), port.parse::<i64>().unwrap().into());
                        rule.insert(
                            "methods".into(),
                            toml::Value::Array(vec![
                                "GET".into(),
                                "POST".into(),
                                "PUT".into(),
                                "PATCH".into(),
                            ]),
                        );
                        rule.insert("path".into(), format!("/{path}").into());
                        grants.push(toml::Value::Table(rule));
                    }
                    config.insert((*key).to_owned(), v.clone().into())
                }
                None => config.remove(*key),
            };
        }
        if !grants.is_empty() {
            let http = doc
                .entry("http")
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            if let Some(list) = http.as_array_mut() {
                list.extend(grants);
            }
        }
        toml::to_string(&doc).unwrap()
    }
}

/// A daemon configuration in a temp dir: a ServiceTrade, a Housecall Pro and
/// a Scheduling Pro (ServiceTitan) source, and the given plugins.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(plugins: &[Plugin]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hcp.secret"), HCP_SECRET).unwrap();
        std::fs::write(dir.path().join("st.token"), ST_TOKEN).unwrap();
        std::fs::write(dir.path().join("sp.key"), SP_KEY).unwrap();
        std::fs::write(
            dir.path().join("fieldhook.toml"),
            r#"
listen = "127.0.0.1:0"
data_dir = "data"
plugins_dir = "plugins"

[delivery]
timeout_secs = 5
max_attempts = 3
retry_base_ms = 100

[[sources]]
name = "servicetrade"
vendor = "servicetrade"
secret_file = "st.token"

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"

[[sources]]
name = "scheduling-pro"
vendor = "servicetitan"
secret_file = "sp.key"
"#,
        )
        .unwrap();
        link_compiled_cache(&dir.path().join("data"));
        for plugin in plugins {
            precompile(&plugin.component);
            install_plugin(
                &dir.path().join("plugins"),
                plugin.name,
                &plugin.component,
                &plugin.manifest(),
            );
        }
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("fieldhook.toml")
    }

    /// Every job's state and history, read from the stopped daemon's store.
    fn jobs(&self) -> Vec<fieldhook_store::queue::Task> {
        let store = EventStore::open(&self.dir.path().join("data").join("db")).unwrap();
        let queue = Queue::open(&store).unwrap();
        queue.tasks(Topic::Jobs).unwrap()
    }
}

async fn post(url: String, headers: &[(&str, String)], body: &str) -> reqwest::StatusCode {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(body.to_owned()).send().await.unwrap().status()
}

async fn post_servicetrade(daemon: &DaemonProcess, body: &str) -> reqwest::StatusCode {
    post(
        format!("{}/hooks/servicetrade/{ST_TOKEN}", daemon.url),
        &[],
        body,
    )
    .await
}

async fn post_hcp(daemon: &DaemonProcess, body: &str) -> reqwest::StatusCode {
    let url = format!("{}/hooks/hcp", daemon.url);
    signed_housecall_pro(&reqwest::Client::new(), &url, HCP_SECRET, body)
        .send()
        .await
        .unwrap()
        .status()
}

/// ServiceTitan (assumed scheme, shared/vendors.md): hex HMAC-SHA256 of the
/// raw body in `X-ServiceTitan-Signature`.
async fn post_scheduling_pro(daemon: &DaemonProcess, body: &str) -> reqwest::StatusCode {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SP_KEY.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    post(
        format!("{}/hooks/scheduling-pro", daemon.url),
        &[("X-ServiceTitan-Signature", signature)],
        body,
    )
    .await
}

fn json_of(r: &Received) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&r.body)))
}

fn header(r: &Received, name: &str) -> String {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Waits until no job is ready or leased any more (retries included).
async fn settle(daemon: DaemonProcess, setup: &Setup) -> Vec<fieldhook_store::queue::Task> {
    // Jobs run in well under a second once compiled; give retries room.
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.stop();
    let jobs = setup.jobs();
    for job in &jobs {
        assert!(
            matches!(job.state, TaskState::Done | TaskState::Dead),
            "unfinished: {job:?}"
        );
    }
    jobs
}

#[tokio::test(flavor = "multi_thread")]
async fn servicetrade_status_transitions_reach_the_webhook_and_other_changes_are_dropped() {
    let dest = FakeDestination::start().await;
    let webhook = format!("{}/chat/hook", dest.url);
    let setup = Setup::new(&[Plugin::servicetrade_job_status(vec![(
        "webhook_url",
        Some(webhook),
    )])]);
    let daemon = DaemonProcess::start(&setup.config());

    // A job item edit, a job total change and an appointment status change in
    // one message, then a job that completes.
    let batch = sample("servicetrade-job-status", "batch-mixed.json");
    assert_eq!(post_servicetrade(&daemon, &batch).await, 200);
    let completed = sample("servicetrade-job-status", "job-completed.json");
    assert_eq!(post_servicetrade(&daemon, &completed).await, 200);

    let got = dest.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let mut messages: Vec<Value> = got.iter().map(json_of).collect();
    messages.sort_by_key(|m| m["entity"]["type"].as_str().unwrap_or("").to_owned());
    assert_eq!(
        messages[0]["entity"],
        json!({"type": "appointment", "id": "34872", "uri": "https://api.servicetrade.com/api/appointment/34872"})
    );
    assert_eq!(messages[0]["old_status"], "scheduled");
    assert_eq!(messages[0]["new_status"], "in_progress");
    assert_eq!(
        messages[1]["text"],
        "Job 88123: scheduled → completed (https://api.servicetrade.com/api/job/88123)"
    );
    for r in &got {
        assert_eq!(r.path, "/chat/hook");
        assert!(
            header(r, "idempotency-key").starts_with("st-status:"),
            "{:?}",
            r.headers
        );
    }

    let jobs = settle(daemon, &setup).await;
    assert_eq!(dest.received().len(), 2, "nothing else is posted");
    // The job item never reaches the plugin (not subscribed); the job whose
    // total changed is dropped with the reason.
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let dropped: Vec<_> = jobs
        .iter()
        .filter(|j| {
            j.history
                .iter()
                .any(|a| a.outcome.contains("no status change"))
        })
        .collect();
    assert_eq!(dropped.len(), 1, "{jobs:?}");
    assert!(jobs.iter().all(|j| j.state == TaskState::Done), "{jobs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn housecall_pro_completed_jobs_and_paid_invoices_become_accounting_calls_with_idempotency_keys()
 {
    let dest = FakeDestination::start().await;
    let books = format!("{}/books/v1", dest.url);
    let setup = Setup::new(&[Plugin::hcp_invoice_accounting(vec![(
        "accounting_url",
        Some(books),
    )])]);
    let daemon = DaemonProcess::start(&setup.config());

    assert_eq!(
        post_hcp(
            &daemon,
            &sample("hcp-invoice-accounting", "job-completed.json")
        )
        .await,
        200
    );
    let invoice = dest.wait_for(1, WAIT).await;
    assert_eq!(
        post_hcp(
            &daemon,
            &sample("hcp-invoice-accounting", "invoice-paid.json")
        )
        .await,
        200
    );
    // Not subscribed: never reaches the plugin.
    let updated = r#"{"event":"job.updated","event_occurred_at":"2026-11-21T10:00:00Z","company_id":"c1","job":{"id":"job_7f3e"}}"#;
    assert_eq!(post_hcp(&daemon, updated).await, 200);
    let got = dest.wait_for(2, WAIT).await;
    assert_eq!(invoice.len(), 1);
    assert_eq!(got.len(), 2, "{got:?}");

    let (invoice, payment) = (&got[0], &got[1]);
    assert_eq!(invoice.path, "/books/v1/invoices");
    assert_eq!(
        header(invoice, "idempotency-key"),
        "hcp:233b75f9-4b4f-4a83-b21b-c1ed9e571daa:job.completed:job_7f3e"
    );
    let body = json_of(invoice);
    assert_eq!(body["type"], "invoice");
    assert_eq!(body["external_id"], "job_7f3e");
    assert_eq!(body["total_cents"], 24500);
    assert_eq!(body["currency"], "USD");
    assert_eq!(
        body["customer"],
        json!({"id": "cus_d892", "name": "Dana Reyes", "email": "dana@example.com"})
    );
    assert_eq!(
        body["line_items"][1],
        json!({"name": "Filter", "quantity": 2, "unit_price_cents": 3000})
    );

    assert_eq!(payment.path, "/books/v1/payments");
    assert_eq!(
        header(payment, "idempotency-key"),
        "hcp:233b75f9-4b4f-4a83-b21b-c1ed9e571daa:invoice.paid:inv_51c0"
    );
    let body = json_of(payment);
    assert_eq!(body["type"], "payment");
    assert_eq!(body["amount_cents"], 24500);
    assert_eq!(body["job_id"], "job_7f3e");
    assert_eq!(body["paid_at"], "2026-11-21T09:29:41Z");
    assert!(
        body["fieldhook_event_id"]
            .as_str()
            .unwrap_or("")
            .starts_with("evt_"),
        "{body}"
    );

    let jobs = settle(daemon, &setup).await;
    assert_eq!(jobs.len(), 2, "job.updated made no job: {jobs:?}");
    assert_eq!(dest.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduling_pro_abandoned_session_opens_a_crm_lead_and_the_completed_session_closes_it() {
    let dest = FakeDestination::start().await;
    let crm = format!("{}/crm", dest.url);
    let setup = Setup::new(&[Plugin::schedulingpro_crm_lead(vec![("crm_url", Some(crm))])]);
    let daemon = DaemonProcess::start(&setup.config());

    let abandoned = sample("schedulingpro-crm-lead", "qualified-abandoned-session.json");
    assert_eq!(post_scheduling_pro(&daemon, &abandoned).await, 200);
    let got = dest.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let lead = json_of(&got[0]);
    assert_eq!(got[0].path, "/crm/leads");
    assert_eq!(lead["external_id"], "schedulingpro:42:sess_78");
    assert_eq!(lead["status"], "open");
    assert_eq!(
        lead["contact"],
        json!({"name": "Sam Ortiz", "email": "sam.ortiz@example.com", "phone": "+15125550142", "zip": "78701"})
    );
    assert_eq!(lead["interest"], "Water heater repair");
    assert_eq!(
        header(&got[0], "idempotency-key"),
        "sp-lead-create:schedulingpro:42:sess_78"
    );

    // An abandoned session without a way to follow up is not a lead.
    let anonymous = r#"{"eventId":"b7e1f3a2-0000-4000-8000-000000000199","eventType":"Qualified Abandoned Session","tenantId":42,"data":{"id":"sess_99","customer":{"firstName":"Anon"}}}"#;
    assert_eq!(post_scheduling_pro(&daemon, anonymous).await, 200);

    let completed = sample("schedulingpro-crm-lead", "session-completed.json");
    assert_eq!(post_scheduling_pro(&daemon, &completed).await, 200);
    let got = dest.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].path, "/crm/leads/schedulingpro%3A42%3Asess_78");
    let close = json_of(&got[1]);
    assert_eq!(close["status"], "closed");
    assert_eq!(close["outcome"], "booked");
    assert_eq!(close["job_id"], 5512093);

    let jobs = settle(daemon, &setup).await;
    assert_eq!(dest.received().len(), 2);
    assert!(
        jobs.iter().any(|j| j
            .history
            .iter()
            .any(|a| a.outcome.contains("sess_99: no email or phone"))),
        "{jobs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_or_python_plugin_error_fails_the_job_with_the_plugins_message() {
    let dest = FakeDestination::start().await;
    // Both plugins are missing their required config value.
    let setup = Setup::new(&[
        Plugin::servicetrade_job_status(vec![("webhook_url", None)]),
        Plugin::hcp_invoice_accounting(vec![("accounting_url", None)]),
    ]);
    let daemon = DaemonProcess::start(&setup.config());
    let completed = sample("servicetrade-job-status", "job-completed.json");
    assert_eq!(post_servicetrade(&daemon, &completed).await, 200);
    assert_eq!(
        post_hcp(
            &daemon,
            &sample("hcp-invoice-accounting", "invoice-paid.json")
        )
        .await,
        200
    );

    let jobs = settle(daemon, &setup).await;
    assert!(dest.received().is_empty());
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for (plugin, key) in [
        ("servicetrade-job-status", "webhook_url"),
        ("hcp-invoice-accounting", "accounting_url"),
    ] {
        let job = jobs
            .iter()
            .find(|j| j.id.ends_with(plugin))
            .unwrap_or_else(|| panic!("{plugin}: {jobs:?}"));
        // Not retryable: dead after one attempt, with the plugin's own words.
        assert_eq!(job.state, TaskState::Dead, "{job:?}");
        assert_eq!(job.attempts, 1, "{job:?}");
        let expected = format!("config `{key}` is not set: add it under [config] in plugin.toml");
        assert!(job.history[0].outcome.contains(&expected), "{job:?}");
    }
}

/// Outbound HTTP during `handle` reaches the host's policy from both SDKs
/// (JS `fetch`, Python `fieldhook.http`), and the policy denies it today:
/// nothing is fetched or delivered and the job fails with the reason.
/// Python sees the `http-request-denied` error code and fails at once;
/// StarlingMonkey's `fetch` reports only a NetworkError, which the JS SDK
/// treats as retryable, so that job dead-letters after its retries.
#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_from_javascript_and_python_reaches_the_host_policy_which_denies_it() {
    let dest = FakeDestination::start().await;
    let vendor_url = format!("{}/vendor/api/job/1", dest.url);
    let config = vec![
        ("url", Some(vendor_url.clone())),
        ("endpoint", Some(format!("{}/out", dest.url))),
    ];
    let fixture = |name: &'static str, component: PathBuf| Plugin {
        name,
        component,
        config: config.clone(),
    };
    let plugins = [
        fixture("fetcher-js", js_guest("tests/guests/fetcher-js/plugin.js")),
        fixture("fetcher-py", py_guest("tests/guests/fetcher-py")),
    ];
    let setup = Setup::new(&plugins);
    let daemon = DaemonProcess::start(&setup.config());
    let body = sample("hcp-invoice-accounting", "invoice-paid.json");
    assert_eq!(post_hcp(&daemon, &body).await, 200);

    // Let the JS job's retries run out.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let jobs = settle(daemon, &setup).await;
    assert!(dest.received().is_empty(), "{:?}", dest.received());
    let job = |name: &str| {
        jobs.iter()
            .find(|j| j.id.ends_with(name))
            .unwrap_or_else(|| panic!("{name}: {jobs:?}"))
    };
    let py = job(".fetcher-py");
    assert_eq!((py.state, py.attempts), (TaskState::Dead, 1), "{py:?}");
    let denied = format!("the host denied {vendor_url}: grant it in plugin.toml");
    assert!(py.history[0].outcome.contains(&denied), "{py:?}");
    let js = job(".fetcher-js");
    assert_eq!((js.state, js.attempts), (TaskState::Dead, 3), "{js:?}");
    assert!(
        js.history
            .iter()
            .all(|a| a.outcome.contains("(retryable): fetch failed")),
        "{js:?}"
    );
}

/// Runs `program args` in `dir` and fails the test with its output when it
/// fails.
fn run_ok(dir: &std::path::Path, program: &str, args: &[&str], env: &[(&str, &std::path::Path)]) {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_javascript_and_python_sdks_and_plugins_pass_their_own_unit_tests() {
    let root = workspace_root();
    // JS: the SDK's tests and every JS plugin's, through the SDK's fake host.
    run_ok(
        &root.join("guest-sdk-js"),
        "npm",
        &["test", "--silent"],
        &[],
    );
    // Python: the SDK's tests, then each Python plugin's directory.
    let sdk = root.join("guest-sdk-py");
    run_ok(
        &root,
        "python3",
        &["-m", "unittest", "discover", "-s", "guest-sdk-py/tests"],
        &[],
    );
    let mut plugin_dirs = 0;
    for parent in ["plugins", "tests/guests"] {
        for entry in std::fs::read_dir(root.join(parent)).unwrap() {
            let dir = entry.unwrap().path();
            if dir.join("app.py").is_file() {
                run_ok(
                    &dir,
                    "python3",
                    &["-m", "unittest"],
                    &[("PYTHONPATH", &sdk)],
                );
                plugin_dirs += 1;
            }
        }
    }
    assert!(
        plugin_dirs >= 4,
        "found only {plugin_dirs} Python plugins with tests"
    );
}
