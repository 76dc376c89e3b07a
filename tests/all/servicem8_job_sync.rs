//! The servicem8-job-sync plugin end to end, through the real daemon: a
//! ServiceM8 webhook (authenticated by the token in its URL) comes in, the
//! plugin fetches the job from a fake ServiceM8 API on 127.0.0.1 (which
//! only answers with the API key the host injects from the daemon's
//! `[credentials.servicem8]`), and the mapped record is delivered to a fake
//! destination. The plugin runs with its own `plugin.toml`, only its
//! `[[http]]` hosts and its `[config]` URLs pointed at the fakes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fieldhook_store::EventStore;
use fieldhook_store::queue::{Queue, TaskState, Topic};
use serde_json::{Value, json};

const TOKEN: &str = "sm8-url-token-3f9c2d7e41a84b6c";
const API_KEY: &str = "smk-0a1b2c3d4e5f-private-app";
const JOB: &str = "5d3f6a10-8c2e-4b7f-9e41-1f0b2c3d4e5f";
const GONE_JOB: &str = "00000000-dead-4bad-8bad-000000000404";
const WAIT: Duration = Duration::from_secs(60);

/// One request the fake ServiceM8 API received.
#[derive(Debug, Clone)]
struct ApiCall {
    path: String,
    api_key: Option<String>,
    authorization: Option<String>,
}

/// A fake ServiceM8 REST API: `GET /api_1.0/job/{uuid}.json` answers the
/// sample job for [`JOB`] and 404 for any other uuid, and 401 to any
/// request without the right `X-API-Key`.
struct FakeServiceM8 {
    url: String,
    port: u16,
    calls: Arc<Mutex<Vec<ApiCall>>>,
    _task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Api {
    calls: Arc<Mutex<Vec<ApiCall>>>,
    job: Value,
}

impl FakeServiceM8 {
    async fn start() -> Self {
        let sample = workspace_root().join("plugins/servicem8-job-sync/samples/job.json");
        let job: Value = serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/api_1.0/job/{file}", axum::routing::get(get_job))
            .with_state(Api {
                calls: calls.clone(),
                job,
            });
        let (addr, task) = serve_local(app).await;
        Self {
            url: format!("http://{addr}"),
            port: addr.port(),
            calls,
            _task: task,
        }
    }

    fn calls(&self) -> Vec<ApiCall> {
        self.calls.lock().unwrap().clone()
    }
}

async fn get_job(
    State(api): State<Api>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let api_key = value("x-api-key");
    api.calls.lock().unwrap().push(ApiCall {
        path: format!("/api_1.0/job/{file}"),
        api_key: api_key.clone(),
        authorization: value("authorization"),
    });
    if api_key.as_deref() != Some(API_KEY) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong X-API-Key").into_response();
    }
    match file.strip_suffix(".json") {
        Some(uuid) if uuid == JOB => axum::Json(api.job.clone()).into_response(),
        _ => (StatusCode::NOT_FOUND, axum::Json(json!({"errorCode": 404}))).into_response(),
    }
}

/// The plugin's own plugin.toml, with each `[[http]]` rule moved to a fake
/// (the credentialed API rule to the fake ServiceM8, the delivery rule to
/// the destination; methods, paths and credential kept) and `[config]`
/// pointed at them. Returns the manifest and the delivery path.
fn manifest(api: &FakeServiceM8, dest: &FakeDestination) -> (String, String) {
    let path = workspace_root().join("plugins/servicem8-job-sync/plugin.toml");
    let mut doc: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dest_port: u16 = dest.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut delivery_path = None;
    let rules = doc["http"].as_array_mut().expect("[[http]] rules");
    assert_eq!(rules.len(), 2, "one API rule, one delivery rule");
    for rule in rules {
        let rule = rule.as_table_mut().unwrap();
        let port = match rule.get("credential").and_then(|c| c.as_str()) {
            Some(credential) => {
                assert_eq!(credential, "servicem8");
                assert_eq!(rule["host"].as_str(), Some("api.servicem8.com"));
                assert_eq!(rule["methods"], toml::Value::from(vec!["GET"]));
                api.port
            }
            None => {
                assert_eq!(rule["methods"], toml::Value::from(vec!["POST"]));
                delivery_path = Some(rule["path"].as_str().unwrap().to_owned());
                dest_port
            }
        };
        rule.insert("scheme".into(), "http".into());
        rule.insert("host".into(), "127.0.0.1".into());
        rule.insert("port".into(), i64::from(port).into());
    }
    let delivery_path = delivery_path.expect("a delivery rule");
    let config = doc["config"].as_table_mut().unwrap();
    config.insert(
        "endpoint".into(),
        format!("{}{delivery_path}", dest.url).into(),
    );
    config.insert("api_base".into(), format!("{}/api_1.0", api.url).into());
    (toml::to_string(&doc).unwrap(), delivery_path)
}

/// A daemon configuration: one ServiceM8 source (URL token), the
/// `servicem8` API-key credential, and the plugin.
fn setup(dir: &Path, manifest: &str) -> PathBuf {
    std::fs::write(dir.join("sm8.token"), TOKEN).unwrap();
    std::fs::write(dir.join("sm8.key"), API_KEY).unwrap();
    let config = dir.join("fieldhook.toml");
    std::fs::write(
        &config,
        r#"
listen = "127.0.0.1:0"
data_dir = "data"
plugins_dir = "plugins"

[delivery]
timeout_secs = 5
max_attempts = 3
retry_base_ms = 100

[[sources]]
name = "servicem8"
vendor = "servicem8"
secret_file = "sm8.token"

[credentials.servicem8]
hosts = ["127.0.0.1"]
kind = "api-key"
header = "X-API-Key"
key_file = "sm8.key"
"#,
    )
    .unwrap();
    install_plugin(
        &dir.join("plugins"),
        "servicem8-job-sync",
        &guest("servicem8-job-sync"),
        manifest,
    );
    config
}

/// ServiceM8's object webhook for one job, as it posts it.
fn notice(api: &FakeServiceM8, uuid: &str) -> String {
    json!({
        "object": "job",
        "entry": [{"changed_fields": ["status"], "time": "2026-11-21 09:31:07", "uuid": uuid}],
        "resource_url": format!("{}/api_1.0/job/{uuid}.json", api.url),
    })
    .to_string()
}

async fn post(
    daemon: &DaemonProcess,
    token: &str,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/hooks/servicem8/{token}", daemon.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servicem8_job_notice_is_fetched_with_the_hosts_api_key_and_delivered_as_a_record() {
    let api = FakeServiceM8::start().await;
    let dest = FakeDestination::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, delivery_path) = manifest(&api, &dest);
    let config = setup(tmp.path(), &manifest);
    let daemon = DaemonProcess::start(&config);

    // ServiceM8 checks the callback URL first: the challenge comes back
    // as is and nothing is stored.
    let handshake = post(
        &daemon,
        TOKEN,
        "application/x-www-form-urlencoded",
        "mode=subscribe&challenge=7f3c2a9e41b8".into(),
    )
    .await;
    assert_eq!(handshake.status(), 200);
    assert_eq!(handshake.text().await.unwrap(), "7f3c2a9e41b8");

    // A notice on a wrong token is refused (never with 410, which would
    // unsubscribe the webhook) and fetches nothing.
    let forged = post(
        &daemon,
        "not-the-token",
        "application/json",
        notice(&api, JOB),
    )
    .await;
    assert!(
        forged.status().is_client_error() && forged.status() != 410,
        "{}",
        forged.status()
    );

    let accepted = post(&daemon, TOKEN, "application/json", notice(&api, JOB)).await;
    assert_eq!(accepted.status(), 200);
    let got = dest.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let delivery = &got[0];
    assert_eq!(delivery.path, delivery_path);
    assert_eq!(
        delivery.headers["idempotency-key"],
        format!("servicem8-job-sync:{JOB}:2026-11-21T09:31:05").as_str()
    );
    let record: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(record["id"], JOB);
    assert_eq!(record["number"], "1042");
    assert_eq!(record["status"], "completed");
    assert_eq!(
        record["company_uuid"],
        "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
    );
    assert_eq!(record["address"]["city"], "Sydney");
    assert_eq!(record["totals"]["invoice_cents"], 245050);
    assert_eq!(record["dates"]["completed"], "2026-11-21T09:30:52");
    assert_eq!(record["notice"]["kind"], "job.updated");
    assert_eq!(record["notice"]["time"], "2026-11-21 09:31:07");
    assert_eq!(record["notice"]["changed_fields"], json!(["status"]));
    // The key went to ServiceM8 only: not to the destination, not into
    // the record.
    assert!(delivery.headers.get("x-api-key").is_none());
    assert!(!String::from_utf8_lossy(&delivery.body).contains(API_KEY));

    // A job ServiceM8 no longer has: fetched once, then dead at once.
    let gone = post(&daemon, TOKEN, "application/json", notice(&api, GONE_JOB)).await;
    assert_eq!(gone.status(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let calls = api.calls();
    assert_eq!(calls.len(), 2, "one fetch per accepted notice: {calls:?}");
    assert_eq!(calls[0].path, format!("/api_1.0/job/{JOB}.json"));
    assert_eq!(calls[1].path, format!("/api_1.0/job/{GONE_JOB}.json"));
    for call in &calls {
        assert_eq!(call.api_key.as_deref(), Some(API_KEY), "{call:?}");
        assert_eq!(call.authorization, None, "{call:?}");
    }

    // `plugin run --event-id` refuses the store while the daemon holds it.
    let component = guest("servicem8-job-sync");
    let plugin_dir = tmp.path().join("plugins/servicem8-job-sync");
    let run = |id: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fieldhook"))
            .args(["plugin", "run"])
            .arg(&component)
            .arg("--manifest")
            .arg(plugin_dir.join("plugin.toml"))
            .args(["--event-id", id, "--config"])
            .arg(&config)
            .args(extra)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let locked = run("evt_any", &[]);
    assert!(!locked.status.success());
    assert!(
        String::from_utf8_lossy(&locked.stderr).contains("stop it first"),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );

    daemon.stop();
    assert_eq!(dest.received().len(), 1, "nothing else was delivered");
    let store = EventStore::open(&tmp.path().join("data/db")).unwrap();
    let queue = Queue::open(&store).unwrap();
    let jobs = queue.tasks(Topic::Jobs).unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let events = store.events_page(None, 10, &|_| true).unwrap();
    assert_eq!(events.len(), 2, "the handshake is not an event: {events:?}");
    let stored = &events[0];
    assert_eq!(
        stored.entity.as_ref().and_then(|e| e.url.clone()),
        Some(format!("{}/api_1.0/job/{JOB}.json", api.url))
    );
    let job_of = |event: &str| {
        jobs.iter()
            .find(|j| j.id.contains(event))
            .unwrap_or_else(|| panic!("job of {event}: {jobs:?}"))
    };
    assert_eq!(job_of(&stored.id).state, TaskState::Done);
    let dead = job_of(&events[1].id);
    assert_eq!(
        (dead.state, dead.attempts),
        (TaskState::Dead, 1),
        "{dead:?}"
    );
    assert!(
        dead.history[0]
            .outcome
            .contains(&format!("ServiceM8 has no job {GONE_JOB} (HTTP 404")),
        "{dead:?}"
    );
    let stored_id = stored.id.clone();
    drop(queue);
    store.close().await.unwrap();

    // Stopped: the stored notice runs again locally, against a canned
    // answer in which the job has moved on.
    let mut moved = serde_json::from_str::<Value>(
        &std::fs::read_to_string(
            workspace_root().join("plugins/servicem8-job-sync/samples/job.json"),
        )
        .unwrap(),
    )
    .unwrap();
    moved["status"] = "Unsuccessful".into();
    let canned = tmp.path().join("responses.json");
    std::fs::write(
        &canned,
        json!([{"method": "GET", "url": format!("{}/api_1.0/job/*", api.url), "body": moved}])
            .to_string(),
    )
    .unwrap();
    let replay = run(
        &stored_id,
        &["--responses", canned.to_str().unwrap(), "--json"],
    );
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let report: Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(report["event"]["id"], stored_id.as_str());
    assert_eq!(
        report["decision"]["requests"][0]["json"]["status"],
        "unsuccessful"
    );
    assert_eq!(api.calls().len(), 2, "canned: nothing reached the API");
}
