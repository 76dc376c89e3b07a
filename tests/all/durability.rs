//! Nothing lost: crashes, destinations that are down or refuse, dead letters
//! and replay, end to end against the real daemon.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;
use fieldhook_store::EventStore;
use fieldhook_store::queue::{Queue, TaskLog, TaskState, Topic};

const SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";

fn job_completed(job_id: &str) -> String {
    format!(
        r#"{{"event":"job.completed","event_occurred_at":"2026-11-20T15:04:05Z","company_id":"233b75f9","job":{{"id":"{job_id}","invoice_number":"1042","total_amount":24500,"customer":{{"id":"cus_d892","first_name":"Dana","last_name":"Reyes","email":"dana@example.com"}}}}}}"#
    )
}

/// A daemon configuration in a temp dir: a Housecall Pro source, the
/// accounting-sync plugin posting to `endpoint`, an admin API, and `extra`.
struct Setup {
    dir: tempfile::TempDir,
    admin: AdminApi,
}

impl Setup {
    fn new(endpoint: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hcp.secret"), SECRET).unwrap();
        let admin = AdminApi::new(dir.path());
        let admin_config = admin.config();
        std::fs::write(
            dir.path().join("fieldhook.toml"),
            format!(
                r#"
listen = "127.0.0.1:0"

{admin_config}
[workers]
jobs = 2
deliveries = 4

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"
{extra}
"#
            ),
        )
        .unwrap();
        install_plugin(
            &dir.path().join("plugins"),
            "accounting-sync",
            &guest("accounting-sync"),
            &format!(
                "name = \"accounting-sync\"\nversion = \"0.1.0\"\n[[subscriptions]]\nsource = \"hcp\"\nkinds = [\"job.completed\"]\n{grant}[config]\nendpoint = \"{endpoint}\"\n",
                grant = http_grant(endpoint)
            ),
        );
        Self { dir, admin }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("fieldhook.toml")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs the `fieldhook` CLI with this config; returns (success, stdout).
    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

async fn post_hcp(
    client: &reqwest::Client,
    daemon_url: &str,
    body: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    signed_housecall_pro(client, &format!("{daemon_url}/hooks/hcp"), SECRET, body)
        .timeout(Duration::from_secs(5))
        .send()
        .await
}

/// Opens a stopped daemon's queue.
fn queue(data: &Path) -> (EventStore, Queue) {
    let store = EventStore::open(&data.join("db")).unwrap();
    let queue = Queue::open(&store).unwrap();
    (store, queue)
}

fn event_ids_delivered(dest: &FakeDestination) -> HashSet<String> {
    dest.received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter_map(|v| v["fieldhook_event_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_event_is_processed_despite_kill_9_at_random_moments() {
    const ROUNDS: usize = 4;
    const SENDERS: usize = 4;
    let dest = FakeDestination::start().await;
    let setup = Setup::new(
        &format!("{}/books/jobs", dest.url),
        "[delivery]\nmax_attempts = 20\nretry_base_ms = 50\n",
    );
    let mut accepted: HashSet<String> = HashSet::new();
    let mut sent = 0usize;
    for round in 0..ROUNDS {
        let daemon = DaemonProcess::start(&setup.config());
        let run_for = Duration::from_millis(rand::random_range(300..1500));
        let deadline = Instant::now() + run_for;
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let url = daemon.url.clone();
            senders.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut ok = Vec::new();
                let mut n = 0;
                // Bounded: at most 500 per sender per round, and the deadline.
                while Instant::now() < deadline + Duration::from_millis(500) && n < 500 {
                    let body = job_completed(&format!("job_{round}_{s}_{n}"));
                    n += 1;
                    match post_hcp(&client, &url, &body).await {
                        Ok(r) if r.status() == 200 => {
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            ok.extend(
                                v["stored"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|i| i.as_str().map(str::to_owned)),
                            );
                        }
                        // The daemon was killed under this request: not acknowledged.
                        _ => break,
                    }
                }
                (ok, n)
            }));
        }
        // Kill while the senders are still sending.
        tokio::time::sleep(run_for).await;
        daemon.kill();
        for s in senders {
            let (ok, n) = s.await.unwrap();
            accepted.extend(ok);
            sent += n;
        }
    }
    assert!(
        accepted.len() >= ROUNDS,
        "the test sent too little to mean anything: {} of {sent}",
        accepted.len()
    );

    let daemon = DaemonProcess::start(&setup.config());
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<String> = accepted.iter().cloned().collect();
    while Instant::now() < deadline {
        let delivered = event_ids_delivered(&dest);
        missing = accepted
            .iter()
            .filter(|id| !delivered.contains(*id))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.stop();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events never delivered, e.g. {:?}",
        missing.len(),
        accepted.len(),
        missing.first()
    );

    let (store, q) = queue(&setup.data());
    for topic in Topic::ALL {
        let dead = q
            .list(topic, None, 10, &|t| t.state == TaskState::Dead)
            .unwrap();
        assert!(dead.is_empty(), "dead-letter queue not empty: {dead:?}");
    }
    drop(q);
    store.close().await.unwrap();
    let verify = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .args(["store", "verify", "--data-dir"])
        .arg(setup.data())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "store verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    eprintln!(
        "crash test: {} acknowledged of {sent} sent over {ROUNDS} kills, all delivered",
        accepted.len()
    );
}

/// A destination recording requests on a fixed port.
async fn listen_on(port: u16) -> FakeDestinationOn {
    let received = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    let r = received.clone();
    let app = axum::Router::new().fallback(move || {
        let r = r.clone();
        async move {
            *r.lock().unwrap() += 1;
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeDestinationOn {
        received,
        _task: task,
    }
}

struct FakeDestinationOn {
    received: std::sync::Arc<std::sync::Mutex<usize>>,
    _task: tokio::task::JoinHandle<()>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_is_down_gets_the_delivery_once_it_is_up() {
    let port = free_port();
    let setup = Setup::new(
        &format!("http://127.0.0.1:{port}/books/jobs"),
        &format!(
            "[delivery]\nmax_attempts = 50\nretry_base_ms = 50\n\n[[destinations]]\nmatch = \"http://127.0.0.1:{port}\"\nretry_max_ms = 200\nbreaker_failures = 2\nbreaker_open_secs = 1\n"
        ),
    );
    let daemon = DaemonProcess::start(&setup.config());
    let client = reqwest::Client::new();
    assert_eq!(
        post_hcp(&client, &daemon.url, &job_completed("job_down"))
            .await
            .unwrap()
            .status(),
        200
    );
    // Down: connection refused, the circuit opens.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = setup.admin.get_json("/stats").await;
        let open = stats["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["circuit"] == "open");
        if open {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the circuit never opened: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let up = listen_on(port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while *up.received.lock().unwrap() == 0 {
        assert!(
            Instant::now() < deadline,
            "not delivered after the destination came up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop();
    let (_store, q) = queue(&setup.data());
    let d = &q.tasks(Topic::Deliveries).unwrap()[0];
    assert_eq!(d.state, TaskState::Done, "{d:?}");
    assert!(
        d.history
            .iter()
            .any(|a| a.outcome.contains("network error")),
        "{:?}",
        d.history
    );
    assert_eq!(*up.received.lock().unwrap(), 1, "one probe, delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_is_dead_lettered_with_its_reason_and_a_replay_delivers_it() {
    let dest = FakeDestination::start().await;
    dest.answer_with(&[422]);
    let setup = Setup::new(&format!("{}/books/jobs", dest.url), "");
    let daemon = DaemonProcess::start(&setup.config());
    let client = reqwest::Client::new();
    assert_eq!(
        post_hcp(&client, &daemon.url, &job_completed("job_4xx"))
            .await
            .unwrap()
            .status(),
        200
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let dlq = loop {
        let v = setup.admin.get_json("/dlq").await;
        if v["dead_letters"].as_array().is_some_and(|l| !l.is_empty()) {
            break v;
        }
        assert!(Instant::now() < deadline, "nothing dead-lettered: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let dead = &dlq["dead_letters"][0];
    assert_eq!(dead["topic"], "deliveries");
    assert!(
        dead["reason"].as_str().unwrap().contains("HTTP 422"),
        "{dead}"
    );
    assert_eq!(
        dead["history"].as_array().unwrap().len(),
        1,
        "a 4xx is not retried"
    );
    assert_eq!(dest.received().len(), 1);

    let (ok, listing) = setup.cli(&["dlq"]);
    assert!(ok && listing.contains("HTTP 422"), "{listing}");
    let (ok, replayed) = setup.cli(&["replay", "--dlq", "--topic", "deliveries"]);
    assert!(ok && replayed.contains("1 deliveries"), "{replayed}");
    assert_eq!(
        dest.wait_for(2, Duration::from_secs(20)).await.len(),
        2,
        "the replay delivered"
    );

    // Replay by source and time range: the event's job runs again and
    // re-delivers (same idempotency key).
    let (ok, listed) = setup.cli(&["events", "--source", "hcp"]);
    assert!(ok && listed.contains("evt_"), "{listed}");
    let (ok, replayed) = setup.cli(&["replay", "--source", "hcp", "--from", "1h"]);
    assert!(ok && replayed.contains("1 events, 1 jobs"), "{replayed}");
    let got = dest.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "the range replay delivered again");
    assert_eq!(
        got[2].headers["idempotency-key"],
        got[1].headers["idempotency-key"]
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = setup
            .admin
            .get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("fieldhook_dlq_size{topic=\"deliveries\"} 0")
            && metrics.contains("fieldhook_queue_depth{topic=\"deliveries\"} 0")
        {
            assert!(
                metrics.contains("fieldhook_webhooks_received_total 1"),
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unauthorized = reqwest::get(format!("{}/metrics", setup.admin.url))
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401, "the admin API needs the token");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_destination_does_not_hold_up_deliveries_to_another() {
    // The slow destination answers after 2 s, one request at a time.
    let slow_port = free_port();
    let slow_hits = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    let hits = slow_hits.clone();
    let slow_app = axum::Router::new().fallback(move || {
        let hits = hits.clone();
        async move {
            *hits.lock().unwrap() += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", slow_port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, slow_app).await;
    });
    let fast = FakeDestination::start().await;
    let setup = Setup::new(
        &format!("http://127.0.0.1:{slow_port}/books/jobs"),
        &format!("[[destinations]]\nmatch = \"http://127.0.0.1:{slow_port}\"\nconcurrency = 1\n"),
    );
    // A second copy of the plugin maps the same events to the fast destination.
    install_plugin(
        &setup.dir.path().join("plugins"),
        "fast-sync",
        &guest("accounting-sync"),
        &format!(
            "name = \"fast-sync\"\nversion = \"0.1.0\"\n[[subscriptions]]\nsource = \"hcp\"\nkinds = [\"job.completed\"]\n{}[config]\nendpoint = \"{}/books/jobs\"\n",
            http_grant(&fast.url),
            fast.url
        ),
    );
    let daemon = DaemonProcess::start(&setup.config());
    let client = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..5 {
        assert_eq!(
            post_hcp(
                &client,
                &daemon.url,
                &job_completed(&format!("job_slow_{i}"))
            )
            .await
            .unwrap()
            .status(),
            200
        );
    }
    let got = fast.wait_for(5, Duration::from_secs(20)).await;
    let fast_done = started.elapsed();
    assert_eq!(got.len(), 5);
    // Five slow deliveries one at a time take 10 s; the fast ones must not wait for them.
    eprintln!("fast destination served in {fast_done:?}");
    assert!(
        fast_done < Duration::from_millis(1900),
        "fast destination waited {fast_done:?}"
    );
    assert!(
        *slow_hits.lock().unwrap() <= 2,
        "the slow destination's concurrency limit held"
    );
    daemon.stop();
}

/// A ServiceTrade message of `items` entity changes (appointments
/// `1000..1000 + items`).
fn servicetrade_message(items: usize) -> String {
    let data: Vec<String> = (0..items)
        .map(|i| {
            let id = 1000 + i;
            format!(
                r#"{{"action":"updated","timestamp":1401833052,"entity":{{"type":"appointment","id":{id},"uri":"https://api.servicetrade.com/api/appointment/{id}"}},"changeset":[]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"messageId":"5e2a9c1d-2222-4333-8444-955566667777","timestamp":"1401833057","data":[{}]}}"#,
        data.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_servicetrade_message_accepted_before_kill_9_reaches_the_plugin_whole_for_each_of_its_events()
 {
    const ITEMS: usize = 40;
    const ST_TOKEN: &str = "st-url-token-3b9e41c07d2a5f68";
    let dest = FakeDestination::start().await;
    let endpoint = format!("{}/echo", dest.url);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("st.token"), ST_TOKEN).unwrap();
    let admin = AdminApi::new(dir.path());
    std::fs::write(
        dir.path().join("fieldhook.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\n{}\n[[sources]]\nname = \"st\"\nvendor = \"servicetrade\"\nsecret_file = \"st.token\"\n",
            admin.config()
        ),
    )
    .unwrap();
    // The echo plugin delivers what it was given: the event's id, its
    // entity, and the length of the body it read.
    install_plugin(
        &dir.path().join("plugins"),
        "echo",
        &guest("echo"),
        &format!(
            "name = \"echo\"\nversion = \"0.1.0\"\n[[subscriptions]]\nsource = \"st\"\n{grant}[config]\nendpoint = \"{endpoint}\"\n",
            grant = http_grant(&endpoint)
        ),
    );
    let config = dir.path().join("fieldhook.toml");
    let message = servicetrade_message(ITEMS);

    let daemon = DaemonProcess::start(&config);
    let resp = reqwest::Client::new()
        .post(format!("{}/hooks/st/{ST_TOKEN}", daemon.url))
        .body(message.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let stored: Vec<String> = answer["stored"]
        .as_array()
        .expect("stored ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(stored.len(), ITEMS, "one event per item: {answer}");
    // Straight after the answer: sled has written little or none of it, so
    // the restart rebuilds the events and their shared message from the
    // journal.
    daemon.kill();

    let daemon = DaemonProcess::start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Each event's delivery (at least once: a run the kill cut short runs
    // again), by event id.
    let delivered = loop {
        let mut by_event = std::collections::HashMap::new();
        for r in dest.received() {
            let text = String::from_utf8_lossy(&r.body).into_owned();
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_owned))
                    .unwrap_or_default()
            };
            by_event.insert(field("id"), (field("entity"), field("body_bytes")));
        }
        if by_event.len() >= ITEMS {
            break by_event;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {ITEMS} events delivered after the restart",
            by_event.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (i, id) in stored.iter().enumerate() {
        let (entity, body_bytes) = delivered.get(id).expect("delivered");
        let item = 1000 + i;
        assert_eq!(
            entity,
            &format!("appointment {item} https://api.servicetrade.com/api/appointment/{item}"),
            "event {i} is about its own item"
        );
        assert_eq!(
            body_bytes,
            &message.len().to_string(),
            "event {i} read the whole message"
        );
    }
    // The admin API shows any of them with the whole message.
    let last = admin
        .get_json(&format!("/events/{}", stored[ITEMS - 1]))
        .await;
    assert_eq!(last["body"].as_str(), Some(message.as_str()), "{last}");
    daemon.stop();

    let db = dir.path().join("data").join("db");
    let store = EventStore::open(&db).unwrap();
    assert_eq!(
        (store.event_count(), store.message_count()),
        (ITEMS, 1),
        "the events, and their message once"
    );
    drop(store);
    let report = fieldhook_store::events::verify::verify(&db).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
