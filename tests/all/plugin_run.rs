//! `fieldhook plugin run` on every real plugin of `plugins/`, as an author
//! runs it: the real binary, the plugin's own `plugin.toml` and sample
//! events, canned answers for its outbound HTTP, and assertions on the
//! `--json` report (decision, outbound requests, usage against the limits).
//! Also `--event-id`: a stored event, read from the daemon's sled store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::support::*;
use fieldhook_core::event::{EntityRecord, Message, NewEvent};
use fieldhook_policy::grants::Target;
use fieldhook_policy::manifest::Manifest;
use fieldhook_store::EventStore;
use serde_json::{Value, json};

const SM8_JOB: &str = "5d3f6a10-8c2e-4b7f-9e41-1f0b2c3d4e5f";

fn plugin_dir(name: &str) -> PathBuf {
    workspace_root().join("plugins").join(name)
}

/// A temp dir for the tool whose `fieldhook-compiled` is the tests' shared
/// compiled-code cache: `plugin run` keeps compiled code in
/// `$TMPDIR/fieldhook-compiled`, and a JS/Python component takes 15 s or
/// more to compile, so it is compiled once ([`precompile`]) for all runs.
fn tool_tmp() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = shared_compiled_cache().with_file_name("plugin-run-tmp");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(shared_compiled_cache()).unwrap();
        let link = dir.join("fieldhook-compiled");
        if !link.exists() {
            match std::os::unix::fs::symlink(shared_compiled_cache(), &link) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    panic!("cannot link {}: {e}", link.display())
                }
                _ => {}
            }
        }
        dir
    })
}

fn fieldhook(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .args(args)
        .env("TMPDIR", tool_tmp())
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .output()
        .expect("fieldhook runs")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `plugin run COMPONENT --manifest plugin.toml --json` plus `args`, for a
/// plugin of `plugins/`: the parsed report and whether the run succeeded.
fn run_json(component: &Path, plugin: &str, args: &[&str]) -> (Value, bool) {
    precompile(component);
    let manifest = plugin_dir(plugin).join("plugin.toml");
    let out = fieldhook(
        &[
            &[
                "plugin",
                "run",
                path_str(component),
                "--manifest",
                path_str(&manifest),
                "--json",
            ][..],
            args,
        ]
        .concat(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "--json prints one JSON document ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status.success())
}

/// A sample file of a plugin, as an argument.
fn sample(plugin: &str, name: &str) -> String {
    let path = plugin_dir(plugin).join("samples").join(name);
    assert!(path.is_file(), "{} missing", path.display());
    path.to_string_lossy().into_owned()
}

/// A canned-responses file in `dir`.
fn responses(dir: &Path, canned: Value) -> String {
    let path = dir.join("responses.json");
    std::fs::write(&path, canned.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

/// The one request a deliver decision holds.
fn delivered(report: &Value) -> &Value {
    assert_eq!(report["error"], Value::Null, "{report:#}");
    assert_eq!(report["decision"]["type"], "deliver", "{report:#}");
    let requests = report["decision"]["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{report:#}");
    &requests[0]
}

/// The plugin's own manifest grants what it delivers (the daemon refuses a
/// delivery its manifest does not grant).
fn assert_granted(plugin: &str, request: &Value) {
    let manifest = Manifest::load(&plugin_dir(plugin).join("plugin.toml")).unwrap();
    let method = request["method"].as_str().unwrap();
    let url = request["url"].as_str().unwrap();
    let target = Target::parse(method, url).unwrap();
    if let Err(denied) = manifest.http.check(&target) {
        panic!("{plugin}'s plugin.toml does not grant its own delivery: {denied}");
    }
}

/// Time, CPU time and memory are reported against the manifest's limits.
fn assert_usage_within_limits(report: &Value, plugin: &str) {
    let manifest = Manifest::load(&plugin_dir(plugin).join("plugin.toml")).unwrap();
    let usage = &report["usage"];
    assert_eq!(usage["timeout_ms"], manifest.limits.timeout_ms, "{usage}");
    assert_eq!(usage["cpu_limit_ms"], manifest.limits.cpu_ms, "{usage}");
    assert_eq!(
        usage["memory_limit_mb"], manifest.limits.memory_mb,
        "{usage}"
    );
    let (elapsed, cpu) = (
        usage["elapsed_ms"].as_f64().unwrap(),
        usage["cpu_ms"].as_f64().unwrap(),
    );
    assert!(cpu > 0.0 && cpu <= elapsed + 0.01, "{usage}");
    assert!(usage["peak_memory_bytes"].as_u64().unwrap() > 0, "{usage}");
}

// ---------------------------------------------------------------- servicem8-job-sync

/// Runs `plugin` on its sample event `sample_file` with no canned
/// responses (any outbound HTTP would be denied), asserts it succeeded and
/// stayed within its limits, and returns the report.
fn run_sample_offline(component: &Path, plugin: &str, sample_file: &str) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let (report, ok) = run_json(
        component,
        plugin,
        &[
            "--event",
            &sample(plugin, sample_file),
            "--responses",
            &responses(tmp.path(), json!([])),
        ],
    );
    assert!(ok, "{report:#}");
    assert_usage_within_limits(&report, plugin);
    report
}

fn sm8_job() -> Value {
    let text =
        std::fs::read_to_string(plugin_dir("servicem8-job-sync").join("samples/job.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn servicem8_job_sync_maps_the_fetched_job_into_the_delivered_record() {
    let component = guest("servicem8-job-sync");
    let (report, ok) = run_json(
        &component,
        "servicem8-job-sync",
        &[
            "--event",
            &sample("servicem8-job-sync", "job-updated.event.json"),
            "--responses",
            &sample("servicem8-job-sync", "responses.json"),
        ],
    );
    assert!(ok, "{report:#}");
    assert_eq!(report["event"]["kind"], "job.updated");
    assert_eq!(report["event"]["subscribed"], true);
    // The plugin fetched the notice's resource_url, once.
    assert_eq!(
        report["outbound"],
        json!([{
            "method": "GET",
            "url": format!("https://api.servicem8.com/api_1.0/job/{SM8_JOB}.json"),
            "outcome": "canned", "status": 200, "rule": null,
            // Allowed by the manifest's first grant, which names the credential.
            "grant": {
                "allowed": true, "rule": 1, "reason": null,
                "toml": "[[http]]\nscheme = \"https\"\nhost = \"api.servicem8.com\"\nmethods = [\"GET\"]\npath = \"/api_1.0/job/\"\ncredential = \"servicem8\"",
            },
        }])
    );
    let request = delivered(&report);
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "https://ops.example.com/api/servicem8/jobs");
    assert_eq!(
        request["idempotency_key"],
        format!("servicem8-job-sync:{SM8_JOB}:2026-11-21T09:31:05")
    );
    assert_granted("servicem8-job-sync", request);

    // Every field comes from the canned answer, not from the notice.
    let job = sm8_job();
    let record = &request["json"];
    assert_eq!(record["id"], job["uuid"]);
    assert_eq!(record["number"], job["generated_job_id"]);
    assert_eq!(record["status"], "completed");
    assert_eq!(record["company_uuid"], job["company_uuid"]);
    assert_eq!(record["address"]["full"], job["job_address"]);
    assert_eq!(record["address"]["postcode"], job["geo_postcode"]);
    assert_eq!(record["totals"]["invoice_cents"], 245050);
    assert_eq!(record["totals"]["payment_received"], false);
    assert_eq!(record["dates"]["completed"], "2026-11-21T09:30:52");
    assert_eq!(record["dates"]["paid"], Value::Null, "the zero date");
    assert_eq!(
        record["notice"]["changed_fields"],
        json!(["status", "completion_date"])
    );
    assert_eq!(record["fieldhook_event_id"], report["event"]["id"]);
    assert_usage_within_limits(&report, "servicem8-job-sync");
}

#[test]
fn servicem8_job_sync_retries_when_servicem8_answers_500_or_429() {
    let component = guest("servicem8-job-sync");
    let tmp = tempfile::tempdir().unwrap();
    for status in [500, 429] {
        let canned = responses(
            tmp.path(),
            json!([{"method": "GET", "url": "https://api.servicem8.com/api_1.0/job/*",
                    "status": status, "body": {"errorCode": status}}]),
        );
        let (report, ok) = run_json(
            &component,
            "servicem8-job-sync",
            &[
                "--event",
                &sample("servicem8-job-sync", "job-updated.event.json"),
                "--responses",
                &canned,
            ],
        );
        assert!(!ok, "a plugin error fails the run: {report:#}");
        assert_eq!(report["decision"], Value::Null);
        assert_eq!(report["outbound"][0]["status"], status);
        let error = &report["error"];
        assert_eq!(error["kind"], "plugin", "{error}");
        assert_eq!(error["retryable"], true, "{status}: {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains(&format!("HTTP {status}")),
            "{error}"
        );
    }
}

#[test]
fn servicem8_job_sync_gives_up_at_once_on_a_404() {
    let component = guest("servicem8-job-sync");
    let tmp = tempfile::tempdir().unwrap();
    let canned = responses(
        tmp.path(),
        json!([{"method": "GET", "url": "https://api.servicem8.com/api_1.0/job/*", "status": 404}]),
    );
    let (report, ok) = run_json(
        &component,
        "servicem8-job-sync",
        &[
            "--event",
            &sample("servicem8-job-sync", "job-updated.event.json"),
            "--responses",
            &canned,
        ],
    );
    assert!(!ok);
    let error = &report["error"];
    assert_eq!(error["retryable"], false, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&format!("ServiceM8 has no job {SM8_JOB} (HTTP 404")),
        "{error}"
    );
}

#[test]
fn the_text_report_shows_the_error_and_cpu_time_against_the_limit() {
    let component = guest("servicem8-job-sync");
    precompile(&component);
    let tmp = tempfile::tempdir().unwrap();
    let canned = responses(
        tmp.path(),
        json!([{"url": "https://api.servicem8.com/api_1.0/job/*", "status": 503}]),
    );
    let manifest = plugin_dir("servicem8-job-sync").join("plugin.toml");
    let out = fieldhook(&[
        "plugin",
        "run",
        path_str(&component),
        "--manifest",
        path_str(&manifest),
        "--event",
        &sample("servicem8-job-sync", "job-updated.event.json"),
        "--responses",
        &canned,
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "GET https://api.servicem8.com/api_1.0/job/{SM8_JOB}.json -> answered 503 (canned)"
        )),
        "{text}"
    );
    assert!(text.contains("of 10000 ms, CPU "), "{text}");
    assert!(text.contains(" ms of 1000 ms, memory "), "{text}");
    assert!(
        text.contains("HTTP 503") && text.contains("retryable: the daemon would retry the job"),
        "{text}"
    );
}

// ---------------------------------------------------------------- the other real plugins

#[test]
fn accounting_sync_posts_the_completed_job_to_its_endpoint() {
    let component = guest("accounting-sync");
    let report = run_sample_offline(&component, "accounting-sync", "job-completed.event.json");
    assert_eq!(report["outbound"], json!([]), "no outbound HTTP in handle");
    let request = delivered(&report);
    assert_eq!(request["url"], "https://books.example.com/api/jobs");
    assert_granted("accounting-sync", request);
    let record = &request["json"];
    assert_eq!(record["external_id"], "job_7a2f9c41e8b34d6f");
    assert_eq!(record["total_cents"], 24500);
    assert_eq!(record["currency"], "USD");
    assert_eq!(record["source"], "hcp");
}

#[test]
fn servicetrade_job_status_posts_the_status_transition() {
    let component = js_guest("plugins/servicetrade-job-status/plugin.js");
    let report = run_sample_offline(
        &component,
        "servicetrade-job-status",
        "job-completed.event.json",
    );
    assert_eq!(report["outbound"], json!([]));
    let request = delivered(&report);
    assert_eq!(
        request["url"],
        "https://hooks.slack.com/services/T000/B000/XXXX"
    );
    assert_granted("servicetrade-job-status", request);
    assert_eq!(
        request["json"]["text"],
        "Job 88123: scheduled → completed (https://api.servicetrade.com/api/job/88123)"
    );
    assert_eq!(
        request["idempotency_key"],
        "st-status:job:88123:scheduled->completed:1794999990"
    );
}

#[test]
fn hcp_invoice_accounting_posts_the_payment() {
    let component = py_guest("plugins/hcp-invoice-accounting");
    let report = run_sample_offline(
        &component,
        "hcp-invoice-accounting",
        "invoice-paid.event.json",
    );
    let request = delivered(&report);
    assert_eq!(request["url"], "https://books.example.com/api/v1/payments");
    assert_granted("hcp-invoice-accounting", request);
    assert_eq!(request["json"]["amount_cents"], 24500);
    assert_eq!(request["json"]["job_id"], "job_7f3e");
    assert_eq!(
        request["idempotency_key"],
        "hcp:233b75f9-4b4f-4a83-b21b-c1ed9e571daa:invoice.paid:inv_51c0"
    );
}

#[test]
fn schedulingpro_crm_lead_opens_a_lead_for_an_abandoned_session() {
    let component = py_guest("plugins/schedulingpro-crm-lead");
    let report = run_sample_offline(
        &component,
        "schedulingpro-crm-lead",
        "qualified-abandoned-session.event.json",
    );
    let request = delivered(&report);
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "https://crm.example.com/api/leads");
    assert_granted("schedulingpro-crm-lead", request);
    assert_eq!(request["json"]["external_id"], "schedulingpro:42:sess_78");
    assert_eq!(request["json"]["abandoned_at"], "2026-11-21T18:02:11Z");
}

// ---------------------------------------------------------------- --event-id

/// Stores the ServiceM8 sample notice in a fresh store under `data_dir` as
/// the daemon would, and returns its id. The store stays open (locked)
/// while the returned handle lives.
async fn store_sm8_notice(data_dir: &Path) -> (EventStore, String) {
    let body = std::fs::read(sample("servicem8-job-sync", "webhook-job-updated.json")).unwrap();
    let store = EventStore::open(&data_dir.join("db")).unwrap();
    let stored = store
        .ingest(
            vec![NewEvent {
                source: "servicem8".into(),
                vendor: "servicem8".into(),
                kind: "job.updated".into(),
                entity: Some(EntityRecord {
                    kind: "job".into(),
                    id: SM8_JOB.into(),
                    url: Some(format!(
                        "https://api.servicem8.com/api_1.0/job/{SM8_JOB}.json"
                    )),
                }),
                occurred_at: Some("2026-11-21 09:31:07".into()),
                dedupe_key: Some("job|x".into()),
                parsed: true,
                received_at_ms: 1,
                message: std::sync::Arc::new(Message {
                    headers: vec![("content-type".into(), b"application/json".to_vec())],
                    body,
                }),
            }],
            60_000,
        )
        .await
        .unwrap();
    let id = stored[0].id().to_owned();
    (store, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn event_id_runs_a_stored_event_once_the_daemon_has_let_go_of_the_store() {
    let component = guest("servicem8-job-sync");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (store, id) = store_sm8_notice(&data).await;
    let canned = sample("servicem8-job-sync", "responses.json");
    let args = [
        "--event-id",
        &id,
        "--data-dir",
        path_str(&data),
        "--responses",
        &canned,
    ];

    // While another process holds the store (here the test, in production
    // the daemon), the tool says so instead of waiting or failing vaguely.
    let locked = fieldhook(&[&["plugin", "run", path_str(&component)][..], &args].concat());
    assert!(!locked.status.success());
    let stderr = String::from_utf8_lossy(&locked.stderr);
    assert!(
        stderr.contains(
            "is locked by another process, most likely the running daemon: stop it first"
        ),
        "{stderr}"
    );

    store.close().await.unwrap();
    let (report, ok) = run_json(&component, "servicem8-job-sync", &args);
    assert!(ok, "{report:#}");
    assert_eq!(report["event"]["id"], id.as_str());
    assert_eq!(report["event"]["from"], "store");
    assert_eq!(
        report["event"]["entity"]["url"],
        format!("https://api.servicem8.com/api_1.0/job/{SM8_JOB}.json")
    );
    let request = delivered(&report);
    assert_eq!(request["json"]["fieldhook_event_id"], id.as_str());
    assert_eq!(request["json"]["id"], SM8_JOB);
}

#[tokio::test(flavor = "multi_thread")]
async fn event_id_finds_the_store_through_the_config_and_names_what_is_missing() {
    let component = guest("servicem8-job-sync");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("var");
    let (store, id) = store_sm8_notice(&data).await;
    store.close().await.unwrap();
    let config = tmp.path().join("fieldhook.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ndata_dir = \"var\"\n").unwrap();
    let canned = sample("servicem8-job-sync", "responses.json");

    let (report, ok) = run_json(
        &component,
        "servicem8-job-sync",
        &[
            "--event-id",
            &id,
            "--config",
            path_str(&config),
            "--responses",
            &canned,
        ],
    );
    assert!(ok, "{report:#}");
    assert_eq!(report["event"]["id"], id.as_str());

    let run = |extra: &[&str]| {
        let out = fieldhook(&[&["plugin", "run", path_str(&component)][..], extra].concat());
        assert!(!out.status.success(), "{extra:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let unknown = run(&["--event-id", "evt_nope", "--config", path_str(&config)]);
    assert!(unknown.contains("no event `evt_nope`"), "{unknown}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let missing = run(&["--event-id", &id, "--data-dir", path_str(&empty)]);
    assert!(missing.contains("no event store in"), "{missing}");
    assert!(
        !empty.join("db").exists(),
        "a wrong --data-dir is not created"
    );
    let neither = run(&["--event-id", &id]);
    assert!(
        neither.contains("--data-dir DIR or --config FILE"),
        "{neither}"
    );
    let both = run(&["--event", "x.json", "--event-id", &id]);
    assert!(both.contains("cannot be used with"), "{both}");
}
