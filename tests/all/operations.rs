//! Debounce and ordering per entity, and the admin API, end to end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::Value;

const ST_TOKEN: &str = "st-url-token-3b9e41c07d2a5f68";
const HCP_SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";

struct Setup {
    dir: tempfile::TempDir,
    admin: AdminApi,
}

impl Setup {
    /// Sources `st` (ServiceTrade) and `hcp`, an admin API, and `extra`.
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("st.token"), ST_TOKEN).unwrap();
        std::fs::write(dir.path().join("hcp.secret"), HCP_SECRET).unwrap();
        let admin = AdminApi::new(dir.path());
        let admin_config = admin.config();
        std::fs::write(
            dir.path().join("fieldhook.toml"),
            format!(
                r#"
listen = "127.0.0.1:0"

{admin_config}
[workers]
jobs = 4

[delivery]
retry_base_ms = 100

[[sources]]
name = "st"
vendor = "servicetrade"
secret_file = "st.token"

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"
{extra}
"#
            ),
        )
        .unwrap();
        Self { dir, admin }
    }

    fn plugin(&self, name: &str, package: &str, manifest_rest: &str) {
        install_plugin(
            &self.dir.path().join("plugins"),
            name,
            &guest(package),
            &format!("name = \"{name}\"\nversion = \"0.1.0\"\n{manifest_rest}"),
        );
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("fieldhook.toml")
    }

    async fn admin(&self, path: &str) -> Value {
        self.admin.get_json(path).await
    }

    /// Polls `GET path` until `done` holds (at most `secs`).
    async fn wait_until(&self, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.admin(path).await;
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "gave up waiting on {path}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A message with one change of job `entity_id` at `changed_at` (Unix
/// seconds): one change of a job is one event (its dedupe key is the job and
/// the change time), so distinct changes have distinct times.
fn st_message(message_id: &str, entity_id: u64, changed_at: u64, field_value: &str) -> String {
    format!(
        r#"{{"messageId":"{message_id}","timestamp":"1401833057","data":[{{"action":"updated","timestamp":{changed_at},"userId":1234,"entity":{{"type":"job","id":{entity_id},"uri":"https://api.servicetrade.com/api/job/{entity_id}"}},"changeset":[{{"field":"status","oldValue":"x","newValue":"{field_value}"}}]}}]}}"#
    )
}

fn jobs(v: &Value) -> Vec<Value> {
    v["jobs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servicetrade_burst_for_one_entity_runs_the_plugin_once_with_the_latest_event() {
    let setup = Setup::new("[[entities]]\nsource = \"st\"\ndebounce_ms = 1500\n");
    setup.plugin(
        "accounting-sync",
        "accounting-sync",
        &format!(
            "[[subscriptions]]\nsource = \"st\"\n{}[config]\nendpoint = \"http://127.0.0.1:9/x\"\n",
            http_grant("http://127.0.0.1:9/x")
        ),
    );
    let daemon = DaemonProcess::start(&setup.config());
    let client = reqwest::Client::new();
    let mut burst = Vec::new();
    for i in 0..4 {
        let resp = client
            .post(format!("{}/hooks/st/{ST_TOKEN}", daemon.url))
            .body(st_message(
                &format!("msg-{i}"),
                777,
                1401833052 + i,
                &format!("v{i}"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        burst.push(v["stored"][0].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let other = client
        .post(format!("{}/hooks/st/{ST_TOKEN}", daemon.url))
        .body(st_message("msg-other", 778, 1401833052, "v"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    let v = setup
        .wait_until("/jobs", 20, |v| {
            let j = jobs(v);
            !j.is_empty()
                && j.iter().all(|j| j["state"] == "done")
                && j.iter()
                    .map(|j| j["coalesced"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    == 5
        })
        .await;
    let all = jobs(&v);
    assert_eq!(
        all.len(),
        2,
        "one run for the burst on 777, one for 778: {v}"
    );
    let run = all
        .iter()
        .find(|j| j["coalesced"] == 4)
        .expect("the burst's job");
    assert_eq!(
        run["event_id"],
        burst[3].as_str(),
        "the run sees the latest event"
    );
    assert_eq!(
        run["history"].as_array().unwrap().len(),
        1,
        "the plugin ran once"
    );
    assert!(
        run["history"][0]["outcome"]
            .as_str()
            .unwrap()
            .contains("4 events coalesced"),
        "{run}"
    );
    let events = setup.admin("/events").await;
    assert_eq!(
        events["events"].as_array().unwrap().len(),
        5,
        "every event is stored"
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_jobs_run_one_at_a_time_per_entity_while_other_entities_proceed() {
    let setup = Setup::new("[[entities]]\nplugin = \"trapper\"\nordered = true\n");
    // Every run fails (retryable) three times, then is dead-lettered: slow
    // enough that any overlap inside one entity would show.
    setup.plugin(
        "trapper",
        "trapper",
        "[[subscriptions]]\nsource = \"hcp\"\n[config]\nmode = \"retry\"\n",
    );
    let daemon = DaemonProcess::start(&setup.config());
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for (i, job) in ["job_A", "job_A", "job_B", "job_A"].iter().enumerate() {
        let body = format!(
            r#"{{"event":"job.updated","event_occurred_at":"2026-11-20T15:04:0{i}Z","company_id":"c1","job":{{"id":"{job}"}}}}"#
        );
        let url = format!("{}/hooks/hcp", daemon.url);
        let resp = signed_housecall_pro(&client, &url, HCP_SECRET, &body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        ids.push(v["stored"][0].as_str().unwrap().to_owned());
    }
    let v = setup
        .wait_until("/jobs", 60, |v| {
            jobs(v).len() == 4 && jobs(v).iter().all(|j| j["state"] == "dead")
        })
        .await;
    daemon.stop();
    let by_event = |id: &str| jobs(&v).into_iter().find(|j| j["event_id"] == id).unwrap();
    let span = |j: &Value| {
        let h = j["history"].as_array().unwrap();
        (
            h.first().unwrap()["at_ms"].as_u64().unwrap(),
            h.last().unwrap()["at_ms"].as_u64().unwrap(),
        )
    };
    let (a1, a2, b1, a3) = (
        span(&by_event(&ids[0])),
        span(&by_event(&ids[1])),
        span(&by_event(&ids[2])),
        span(&by_event(&ids[3])),
    );
    assert!(
        a1.1 <= a2.0 && a2.1 <= a3.0,
        "entity A ran out of order or overlapping: {a1:?} {a2:?} {a3:?}"
    );
    assert!(
        b1.0 < a2.0,
        "entity B waited behind entity A: B {b1:?}, A2 {a2:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_lists_plugins_and_failures_and_answers_health_checks() {
    let setup = Setup::new("");
    setup.plugin(
        "trapper",
        "trapper",
        "[[subscriptions]]\nsource = \"hcp\"\n",
    );
    let broken = setup.dir.path().join("plugins").join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("plugin.toml"),
        "name = \"broken\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let daemon = DaemonProcess::start(&setup.config());
    let v = setup.admin("/plugins").await;
    assert_eq!(v["loaded"][0]["name"], "trapper", "{v}");
    assert!(
        v["failures"][0]["dir"]
            .as_str()
            .unwrap()
            .ends_with("broken"),
        "{v}"
    );
    for path in ["/healthz", "/readyz"] {
        let r = reqwest::get(format!("{}{path}", setup.admin.url))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} needs no token");
    }
    let stats = setup.admin("/stats").await;
    assert_eq!(stats["dlq"], 0, "{stats}");
    daemon.stop();
}
