//! The spine, end to end: a signed webhook goes into the real daemon, is
//! stored durably, runs through a real WebAssembly plugin, and its mapped
//! request arrives at a fake destination on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;
use fieldhook_store::EventStore;
use fieldhook_store::queue::{Queue, TaskState, Topic};

const SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";

const JOB_COMPLETED: &str = r#"{"event":"job.completed","event_occurred_at":"2026-11-20T15:04:05Z","company_id":"233b75f9-4b4f-4a83-b21b-c1ed9e571daa","job":{"id":"job_7f3e","invoice_number":"1042","total_amount":24500,"customer":{"id":"cus_d892","first_name":"Dana","last_name":"Reyes","email":"dana@example.com"}}}"#;

/// A daemon configuration in a temp dir: one Housecall Pro source and the
/// accounting-sync plugin pointed at `destination`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(destination: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hcp.secret"), SECRET).unwrap();
        std::fs::write(
            dir.path().join("fieldhook.toml"),
            r#"
listen = "127.0.0.1:0"
data_dir = "data"
plugins_dir = "plugins"
max_body_bytes = 65536

[delivery]
timeout_secs = 5
max_attempts = 3
retry_base_ms = 100

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"
"#,
        )
        .unwrap();
        install_plugin(
            &dir.path().join("plugins"),
            "accounting-sync",
            &guest("accounting-sync"),
            &format!(
                r#"
name = "accounting-sync"
version = "0.1.0"

[[subscriptions]]
source = "hcp"
kinds = ["job.completed"]

# Deliveries follow the same grants as the plugin's own HTTP.
[[http]]
scheme = "http"
host = "127.0.0.1"
port = {port}
methods = ["POST"]
path = "/books/"

[config]
endpoint = "{destination}/books/jobs"
"#,
                port = destination.rsplit(':').next().unwrap_or_default()
            ),
        );
        Self { dir }
    }

    fn add_trapper(&self, mode: &str) {
        install_plugin(
            &self.plugins(),
            "trapper",
            &guest("trapper"),
            &format!(
                r#"
name = "trapper"
version = "0.0.1"

[[subscriptions]]
source = "*"

[limits]
timeout_ms = 500

[config]
mode = "{mode}"
"#
            ),
        );
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("fieldhook.toml")
    }
    fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("data").join("db")
    }
}

async fn post_hcp(daemon: &DaemonProcess, body: &str) -> reqwest::Response {
    post_hcp_signed_with(daemon, body, SECRET).await
}

async fn post_hcp_signed_with(
    daemon: &DaemonProcess,
    body: &str,
    secret: &str,
) -> reqwest::Response {
    let url = format!("{}/hooks/hcp", daemon.url);
    signed_housecall_pro(&reqwest::Client::new(), &url, secret, body)
        .send()
        .await
        .unwrap()
}

/// Opens the stopped daemon's store and returns its event count and queue.
async fn inspect(db: &Path) -> (usize, Queue) {
    let store = EventStore::open(db).unwrap();
    let queue = Queue::open(&store).unwrap();
    (store.event_count(), queue)
}

#[tokio::test]
async fn a_signed_webhook_is_stored_run_through_the_plugin_and_delivered_mapped() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    let daemon = DaemonProcess::start(&setup.config());

    let resp = post_hcp(&daemon, JOB_COMPLETED).await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let event_id = answer["stored"][0]
        .as_str()
        .expect("an event id")
        .to_owned();
    assert!(event_id.starts_with("evt_"), "{answer}");

    let got = dest.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "exactly one delivery");
    assert_eq!(got[0].path, "/books/jobs");
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(
        got[0].headers["idempotency-key"].to_str().unwrap(),
        format!("accounting-sync:{event_id}")
    );
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["external_id"], "job_7f3e");
    assert_eq!(body["invoice_number"], "1042");
    assert_eq!(body["total_cents"], 24500);
    assert_eq!(body["customer"]["id"], "cus_d892");
    assert_eq!(body["customer"]["email"], "dana@example.com");
    assert_eq!(body["fieldhook_event_id"], event_id.as_str());
    daemon.stop();
}

#[tokio::test]
async fn a_bad_signature_is_refused_with_401_and_nothing_is_stored() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    let daemon = DaemonProcess::start(&setup.config());

    let resp = post_hcp_signed_with(&daemon, JOB_COMPLETED, "not-the-secret").await;
    assert_eq!(resp.status(), 401);

    // Tampered body, signature of the original.
    let ts = unix_now();
    let sig = sign_housecall_pro(SECRET, &ts, JOB_COMPLETED.as_bytes());
    let tampered = JOB_COMPLETED.replace("24500", "1");
    let resp = reqwest::Client::new()
        .post(format!("{}/hooks/hcp", daemon.url))
        .header("Api-Timestamp", ts)
        .header("Api-Signature", sig)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.stop();
    assert!(dest.received().is_empty());
    let (events, _) = inspect(&setup.db()).await;
    assert_eq!(events, 0, "a rejected webhook leaves nothing in the store");
}

#[tokio::test]
async fn an_unknown_source_is_404_and_an_oversized_body_is_413() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    let daemon = DaemonProcess::start(&setup.config());
    let client = reqwest::Client::new();

    let resp = client
        .post(format!("{}/hooks/nobody", daemon.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let huge = format!(
        r#"{{"event":"job.completed","pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let resp = post_hcp(&daemon, &huge).await;
    assert_eq!(resp.status(), 413);
    daemon.stop();
    assert_eq!(inspect(&setup.db()).await.0, 0);
}

#[tokio::test]
async fn a_restarted_daemon_keeps_the_event_and_does_not_process_it_twice() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    let daemon = DaemonProcess::start(&setup.config());
    assert_eq!(post_hcp(&daemon, JOB_COMPLETED).await.status(), 200);
    assert_eq!(dest.wait_for(1, Duration::from_secs(30)).await.len(), 1);
    daemon.stop();

    let daemon = DaemonProcess::start(&setup.config());
    // Give the restarted workers time to (wrongly) pick the work up again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.stop();
    assert_eq!(
        dest.received().len(),
        1,
        "a finished job is not run again after a restart"
    );

    let (events, queue) = inspect(&setup.db()).await;
    assert_eq!(events, 1, "the event is still stored");
    let jobs = queue.tasks(Topic::Jobs).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, TaskState::Done);
    let deliveries = queue.tasks(Topic::Deliveries).unwrap();
    assert_eq!(deliveries[0].state, TaskState::Done);
    let outcome = &deliveries[0].history.last().unwrap().outcome;
    assert!(
        outcome.starts_with("delivered: HTTP 200 in ") && outcome.ends_with(" ms"),
        "status and duration of the attempt: {outcome}"
    );
}

#[tokio::test]
async fn an_event_accepted_before_kill_9_is_processed_after_restart() {
    let dest = FakeDestination::start().await;
    // The first delivery attempt fails, so work is still pending whenever
    // the kill lands.
    dest.answer_with(&[503]);
    let setup = Setup::new(&dest.url);
    let daemon = DaemonProcess::start(&setup.config());
    assert_eq!(post_hcp(&daemon, JOB_COMPLETED).await.status(), 200);
    daemon.kill();

    let daemon = DaemonProcess::start(&setup.config());
    let got = dest.wait_for(2, Duration::from_secs(30)).await;
    assert!(
        got.len() >= 2,
        "delivered after the restart (first attempt 503, then 200)"
    );
    daemon.stop();

    let (events, queue) = inspect(&setup.db()).await;
    assert_eq!(events, 1);
    let deliveries = queue.tasks(Topic::Deliveries).unwrap();
    assert_eq!(
        deliveries.len(),
        1,
        "the job ran once and queued one delivery"
    );
    assert_eq!(deliveries[0].state, TaskState::Done, "{:?}", deliveries[0]);
    assert!(
        deliveries[0]
            .history
            .iter()
            .any(|a| a.outcome.contains("503"))
    );
}

#[tokio::test]
async fn a_trapping_plugin_fails_its_own_job_and_the_others_carry_on() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    setup.add_trapper("trap");
    let daemon = DaemonProcess::start(&setup.config());

    assert_eq!(post_hcp(&daemon, JOB_COMPLETED).await.status(), 200);
    assert_eq!(dest.wait_for(1, Duration::from_secs(30)).await.len(), 1);
    // The daemon still takes webhooks after the trap.
    let second = JOB_COMPLETED.replace("job_7f3e", "job_8a41");
    assert_eq!(post_hcp(&daemon, &second).await.status(), 200);
    assert_eq!(dest.wait_for(2, Duration::from_secs(30)).await.len(), 2);
    // Let the trapper's retries (3 attempts, short backoff) run out.
    tokio::time::sleep(Duration::from_secs(4)).await;
    daemon.stop();

    let (_, queue) = inspect(&setup.db()).await;
    let trapped: Vec<_> = queue
        .tasks(Topic::Jobs)
        .unwrap()
        .into_iter()
        .filter(|t| t.id.ends_with(".trapper"))
        .collect();
    assert_eq!(trapped.len(), 2);
    for job in trapped {
        assert_eq!(job.state, TaskState::Dead, "{job:?}");
        assert!(
            job.history.iter().all(|a| a.outcome.contains("trapped")),
            "{:?}",
            job.history
        );
    }
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_plugin_time_limit() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    setup.add_trapper("loop");
    let daemon = DaemonProcess::start(&setup.config());
    assert_eq!(post_hcp(&daemon, JOB_COMPLETED).await.status(), 200);
    assert_eq!(dest.wait_for(1, Duration::from_secs(30)).await.len(), 1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    daemon.stop();
    let (_, queue) = inspect(&setup.db()).await;
    let job = queue
        .tasks(Topic::Jobs)
        .unwrap()
        .into_iter()
        .find(|t| t.id.ends_with(".trapper"))
        .expect("the trapper job exists");
    assert_eq!(job.state, TaskState::Dead, "{job:?}");
    assert!(
        job.history[0].outcome.contains("time limit of 500 ms"),
        "{:?}",
        job.history
    );
}
