//! Schedules: a plugin's `scheduled` entry point runs on its
//! `[[schedules]]`, durably, and the events it emits join the webhooks'
//! pipeline, deduplicated against them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;

use crate::support::*;
use fieldhook_store::EventStore;
use fieldhook_store::queue::{Queue, Task, TaskLog, TaskState, Topic};

const SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";

/// A fake vendor API: `GET /jobs` answers `[]` until `publish`, then the
/// jobs; every request's arrival time is kept.
#[derive(Clone, Default)]
struct FakeApi {
    jobs: Arc<Mutex<serde_json::Value>>,
    open: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<Instant>>>,
}

impl FakeApi {
    async fn start(self) -> String {
        let app = axum::Router::new()
            .route(
                "/jobs",
                get(|State(api): State<FakeApi>| async move {
                    api.hits.lock().unwrap().push(Instant::now());
                    if api.open.load(Ordering::SeqCst) {
                        axum::Json(api.jobs.lock().unwrap().clone())
                    } else {
                        axum::Json(serde_json::json!([]))
                    }
                }),
            )
            .with_state(self);
        let (addr, _task) = serve_local(app).await;
        local(addr)
    }

    fn publish(&self, jobs: serde_json::Value) {
        *self.jobs.lock().unwrap() = jobs;
        self.open.store(true, Ordering::SeqCst);
    }

    fn hits(&self) -> Vec<Instant> {
        self.hits.lock().unwrap().clone()
    }

    async fn wait_for_hits(&self, n: usize, timeout: Duration) -> Vec<Instant> {
        let deadline = Instant::now() + timeout;
        while self.hits().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.hits()
    }
}

/// A daemon with a Housecall Pro source `hcp`, the `poller` plugin on
/// `schedule` (a `[[schedules]]` body) emitting into `hcp`, and the `relay`
/// plugin delivering every `hcp` event to `endpoint`.
fn setup(api: &str, endpoint: &str, schedule: &str, busy_ms: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hcp.secret"), SECRET).unwrap();
    std::fs::write(
        dir.path().join("fieldhook.toml"),
        r#"
listen = "127.0.0.1:0"

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"
"#,
    )
    .unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(
        &plugins,
        "poller",
        &guest("poller"),
        &format!(
            "name = \"poller\"\nversion = \"1\"\n[limits]\ntimeout_ms = 20000\n\
             [[schedules]]\nname = \"reconcile\"\nsource = \"hcp\"\n{schedule}\n\
             {grant}[config]\napi = \"{api}\"\nbusy_ms = \"{busy_ms}\"\n",
            grant = http_grant(api)
        ),
    );
    install_plugin(
        &plugins,
        "relay",
        &guest("relay"),
        &format!(
            "name = \"relay\"\nversion = \"1\"\n[[subscriptions]]\nsource = \"hcp\"\n\
             {grant}[config]\nendpoint = \"{endpoint}\"\n",
            grant = http_grant(endpoint)
        ),
    );
    dir
}

/// The schedule's slot tasks as the stopped daemon left them, oldest first.
async fn slots(data: &Path) -> Vec<Task> {
    let store = EventStore::open(&data.join("db")).unwrap();
    let queue = Queue::open(&store).unwrap();
    let tasks = queue
        .with_prefix(Topic::Schedules, "poller/reconcile/")
        .unwrap();
    drop(queue);
    store.close().await.unwrap();
    tasks
}

fn slot_ms(task: &Task) -> u64 {
    task.id.rsplit('/').next().unwrap().parse().unwrap()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn config(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("fieldhook.toml")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_fires_on_time_and_a_polled_event_a_webhook_brought_is_processed_once() {
    let api = FakeApi::default();
    let api_url = api.clone().start().await;
    let destination = FakeDestination::start().await;
    let dir = setup(&api_url, &destination.url, "every = \"2s\"", 0);
    let started = Instant::now();
    let daemon = DaemonProcess::start(&config(&dir));

    // The webhook brings job_1 first (envelope id = its dedupe key).
    let body = r#"{"id":"k1","event":"job.updated","data":{"id":"job_1"}}"#;
    let url = format!("{}/hooks/hcp", daemon.url);
    let sent = signed_housecall_pro(&reqwest::Client::new(), &url, SECRET, body)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    destination.wait_for(1, Duration::from_secs(10)).await;
    // Then the vendor's API lists job_1 (already delivered) and job_2
    // (a webhook that never came).
    api.publish(serde_json::json!([
        {"key": "k1", "id": "job_1"},
        {"key": "k2", "id": "job_2"},
    ]));

    // Every 2 s: the first run within one period (plus scheduling slack).
    let hits = api.wait_for_hits(3, Duration::from_secs(10)).await;
    assert!(hits.len() >= 3, "the schedule ran {} times", hits.len());
    assert!(
        hits[0] - started < Duration::from_millis(3500),
        "first run after {:?}",
        hits[0] - started
    );
    for pair in hits.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(1000) && gap < Duration::from_millis(3500),
            "runs {gap:?} apart on a 2 s schedule"
        );
    }
    // Two events, two deliveries: job_2 polled, job_1 not processed again
    // though every run lists it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = destination.received();
    assert_eq!(got.len(), 2, "deliveries: {got:?}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_cut_short_by_kill_9_runs_its_slot_again_after_restart() {
    let api = FakeApi::default();
    let api_url = api.clone().start().await;
    let destination = FakeDestination::start().await;
    // The run sleeps 4 s after polling: long enough to be killed in.
    let dir = setup(&api_url, &destination.url, "every = \"1h\"", 4000);
    // An hour is too long to wait: the first slot is published due now by
    // a schedule of 2 s, then the manifest asks for hourly runs, so only
    // the interrupted slot can run again within the test.
    let manifest = dir.path().join("plugins/poller/plugin.toml");
    let hourly = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        hourly.replace("every = \"1h\"", "every = \"2s\""),
    )
    .unwrap();
    let daemon = DaemonProcess::start(&config(&dir));
    let hits = api.wait_for_hits(1, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 1, "the schedule never ran");
    daemon.kill();
    std::fs::write(&manifest, hourly).unwrap();

    let daemon = DaemonProcess::start(&config(&dir));
    let hits = api.wait_for_hits(2, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 2, "the interrupted slot did not run again");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    daemon.stop();

    let tasks = slots(&dir.path().join("data")).await;
    let first = &tasks[0];
    assert_eq!(first.state, TaskState::Done, "{first:?}");
    assert!(
        first
            .history
            .iter()
            .any(|a| a.outcome.contains("interrupted")),
        "{first:?}"
    );
    assert!(
        first.history.last().unwrap().outcome.starts_with("ran:"),
        "{first:?}"
    );
    // The next slot is the hourly one, waiting.
    let next = tasks.last().unwrap();
    assert_eq!(next.state, TaskState::Ready, "{tasks:?}");
    assert_eq!(slot_ms(next) % 3_600_000, 0, "{next:?}");
}

/// Runs the schedule once, stops the daemon for longer than three periods,
/// starts it again and stops it once it settled; returns the slot tasks and
/// when it restarted (Unix ms).
async fn miss_three_slots(missed: &str) -> (Vec<Task>, u64, FakeApi) {
    let api = FakeApi::default();
    let api_url = api.clone().start().await;
    let destination = FakeDestination::start().await;
    let schedule = format!("every = \"2s\"\nmissed = \"{missed}\"");
    let dir = setup(&api_url, &destination.url, &schedule, 0);
    let daemon = DaemonProcess::start(&config(&dir));
    api.wait_for_hits(1, Duration::from_secs(10)).await;
    daemon.stop();
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let restarted = unix_ms();
    let daemon = DaemonProcess::start(&config(&dir));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    daemon.stop();
    (slots(&dir.path().join("data")).await, restarted, api)
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_missed_while_down_run_once_at_start() {
    let (tasks, restarted, api) = miss_three_slots("run-once").await;
    // Three or more slots fell due while it was down: one task stood for
    // them, and it ran once, at start.
    let missed: Vec<&Task> = tasks
        .iter()
        .filter(|t| slot_ms(t) > restarted.saturating_sub(7000) && slot_ms(t) < restarted)
        .collect();
    assert_eq!(missed.len(), 1, "{tasks:?}");
    assert_eq!(missed[0].state, TaskState::Done, "{tasks:?}");
    assert!(
        missed[0]
            .history
            .last()
            .unwrap()
            .outcome
            .starts_with("ran:"),
        "{tasks:?}"
    );
    assert_eq!(missed[0].attempts, 1, "{tasks:?}");
    assert!(api.hits().len() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_missed_skip_a_slot_due_while_down_is_not_run() {
    let (tasks, restarted, _api) = miss_three_slots("skip").await;
    let missed: Vec<&Task> = tasks
        .iter()
        .filter(|t| slot_ms(t) > restarted.saturating_sub(7000) && slot_ms(t) < restarted)
        .collect();
    assert_eq!(missed.len(), 1, "{tasks:?}");
    assert!(
        missed[0]
            .history
            .last()
            .unwrap()
            .outcome
            .starts_with("skipped"),
        "{tasks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_schedules_and_the_schedules_command_show_next_due_and_the_last_run() {
    let api = FakeApi::default();
    let api_url = api.clone().start().await;
    let destination = FakeDestination::start().await;
    let dir = setup(&api_url, &destination.url, "every = \"2s\"", 0);
    let admin = AdminApi::new(dir.path());
    let mut toml = std::fs::read_to_string(config(&dir)).unwrap();
    toml.push_str(&admin.config());
    std::fs::write(config(&dir), toml).unwrap();
    api.publish(serde_json::json!([{"key": "k1", "id": "job_1"}]));
    let daemon = DaemonProcess::start(&config(&dir));

    // Before its first run a schedule has a next due time and no last run;
    // after it, the run's time and outcome.
    let deadline = Instant::now() + Duration::from_secs(10);
    let schedule = loop {
        let v = admin.get_json("/schedules").await;
        let list = v["schedules"].as_array().unwrap().clone();
        assert_eq!(list.len(), 1, "{v:#}");
        let s = list[0].clone();
        assert_eq!(s["plugin"], "poller");
        assert_eq!(s["schedule"], "reconcile");
        assert!(s["next_due_ms"].as_u64().is_some(), "{s:#}");
        if !s["last_state"].is_null() || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(schedule["last_state"], "done", "{schedule:#}");
    assert_eq!(schedule["last_outcome"], "ran: 1 of 1 jobs new");
    let last_run = schedule["last_run_ms"].as_u64().unwrap();
    assert!(last_run.abs_diff(unix_ms()) < 10_000, "{schedule:#}");
    assert!(
        schedule["next_due_ms"].as_u64().unwrap() > schedule["last_slot_ms"].as_u64().unwrap(),
        "the next slot follows the one that ran: {schedule:#}"
    );

    let cli = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fieldhook"))
            .arg("schedules")
            .arg("--config")
            .arg(config(&dir))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = cli(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("poller"))
        .unwrap_or_else(|| panic!("no line for the poller: {text}"));
    assert!(line.contains("reconcile"), "{line}");
    assert_eq!(
        line.matches(" UTC").count(),
        2,
        "next due and last run: {line}"
    );
    assert!(line.ends_with("done: ran: 1 of 1 jobs new"), "{line}");

    let out = cli(&["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schedules"][0]["schedule"], "reconcile", "{v:#}");

    // The console shows the same.
    let mut console = ConsoleClient::new(&admin);
    assert_eq!(console.login(ADMIN_TOKEN).await.status(), 303);
    let page = console.page("/console/schedules").await;
    assert!(
        page.contains("<code>poller</code>") && page.contains("<code>reconcile</code>"),
        "{page}"
    );
    assert!(
        page.contains("ran: 1 of 1 jobs new"),
        "the last run's outcome: {page}"
    );
    assert!(!page.contains("not run yet"), "it has run: {page}");
    daemon.stop();
}

// ---------------------------------------------------------------- servicetrade-reconcile

const ST_TOKEN: &str = "st-url-token-3b9e41c07d2a5f68";

/// A fake ServiceTrade API: sessions at `/api/auth`, and `GET /api/job`
/// (with the session's cookie) answering `jobs` once `open`; each poll's
/// `updatedAfter` is kept.
#[derive(Clone, Default)]
struct FakeServiceTrade {
    jobs: Arc<Mutex<serde_json::Value>>,
    open: Arc<AtomicBool>,
    polls: Arc<Mutex<Vec<String>>>,
}

impl FakeServiceTrade {
    async fn start(self) -> String {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        let app = axum::Router::new()
            .route(
                "/api/auth",
                axum::routing::post(|| async {
                    axum::Json(serde_json::json!({"data": {"authToken": "sess-1"}}))
                })
                .delete(|| async { StatusCode::OK }),
            )
            .route(
                "/api/job",
                get(
                    |State(api): State<FakeServiceTrade>,
                     headers: HeaderMap,
                     axum::extract::Query(q): axum::extract::Query<
                        std::collections::HashMap<String, String>,
                    >| async move {
                        let cookie = headers.get("cookie").and_then(|v| v.to_str().ok());
                        if cookie != Some("PHPSESSID=sess-1") {
                            return StatusCode::UNAUTHORIZED.into_response();
                        }
                        let after = q.get("updatedAfter").cloned().unwrap_or_default();
                        api.polls.lock().unwrap().push(after);
                        let jobs = if api.open.load(Ordering::SeqCst) {
                            api.jobs.lock().unwrap().clone()
                        } else {
                            serde_json::json!([])
                        };
                        axum::Json(serde_json::json!({"data": {"jobs": jobs}})).into_response()
                    },
                ),
            )
            .with_state(self);
        let (addr, _task) = serve_local(app).await;
        local(addr)
    }

    fn polls(&self) -> Vec<String> {
        self.polls.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn servicetrade_reconcile_polls_what_webhooks_missed_and_a_change_both_bring_is_processed_once()
 {
    let api = FakeServiceTrade::default();
    let api_url = api.clone().start().await;
    let destination = FakeDestination::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("st.token"), ST_TOKEN).unwrap();
    std::fs::write(dir.path().join("st.password"), "pw").unwrap();
    let admin = AdminApi::new(dir.path());
    std::fs::write(
        config(&dir),
        format!(
            r#"
listen = "127.0.0.1:0"

[[sources]]
name = "servicetrade"
vendor = "servicetrade"
secret_file = "st.token"

[credentials.servicetrade]
hosts = ["127.0.0.1"]
kind = "servicetrade-session"
auth_url = "{api_url}/api/auth"
username = "integration@example.com"
password_file = "st.password"

{admin}"#,
            admin = admin.config()
        ),
    )
    .unwrap();
    let port = api_url.rsplit(':').next().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(
        &plugins,
        "servicetrade-reconcile",
        &guest("servicetrade-reconcile"),
        &format!(
            "name = \"servicetrade-reconcile\"\nversion = \"1\"\n\
             [[schedules]]\nname = \"jobs\"\nevery = \"2s\"\nsource = \"servicetrade\"\n\
             [[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             methods = [\"GET\"]\npath = \"/api/job\"\ncredential = \"servicetrade\"\n\
             [config]\napi_base = \"{api_url}/api\"\n"
        ),
    );
    install_plugin(
        &plugins,
        "relay",
        &guest("relay"),
        &format!(
            "name = \"relay\"\nversion = \"1\"\n[[subscriptions]]\nsource = \"servicetrade\"\n\
             {grant}[config]\nendpoint = \"{endpoint}\"\n",
            grant = http_grant(&destination.url),
            endpoint = destination.url
        ),
    );
    let daemon = DaemonProcess::start(&config(&dir));

    // Job 101 changes at t_a: the webhook brings it.
    let t_a = unix_ms() / 1000 - 60;
    let t_b = t_a + 5;
    let message = format!(
        r#"{{"messageId":"m-1","timestamp":"{t_a}","data":[{{"action":"updated","timestamp":{t_a},"entity":{{"type":"job","id":101,"uri":"{api_url}/api/job/101"}},"changeset":[]}}]}}"#
    );
    let sent = reqwest::Client::new()
        .post(format!("{}/hooks/servicetrade/{ST_TOKEN}", daemon.url))
        .body(message)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    destination.wait_for(1, Duration::from_secs(10)).await;

    // The API lists 101 (the same change) and 202 (no webhook came).
    *api.jobs.lock().unwrap() = serde_json::json!([
        {"id": 101, "updated": t_a, "uri": format!("{api_url}/api/job/101")},
        {"id": 202, "updated": t_b, "uri": format!("{api_url}/api/job/202")},
    ]);
    api.open.store(true, Ordering::SeqCst);
    let polled_from = api.polls().len();
    let deadline = Instant::now() + Duration::from_secs(15);
    while api.polls().len() < polled_from + 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let polls = api.polls();
    assert!(polls.len() >= polled_from + 3, "polls: {polls:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 101 once (the webhook's), 202 once, though every poll lists both.
    let got = destination.received();
    assert_eq!(got.len(), 2, "deliveries: {got:?}");
    let events = admin.get_json("/events").await;
    let mut keys: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dedupe_key"].as_str().unwrap_or("").to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, [format!("job|101|{t_a}"), format!("job|202|{t_b}")]);
    // The watermark moved to 202's change: later polls ask from there.
    assert_eq!(polls.last().unwrap(), &(t_b - 1).to_string(), "{polls:?}");
    daemon.stop();
}
