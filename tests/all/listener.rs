//! The webhook listener against slow and idle clients: half-sent requests,
//! stalled bodies, more connections than the open-file limit holds. A
//! correctly signed webhook must still be answered, and the admin API and
//! the store must keep working.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";
const ST_TOKEN: &str = "st-url-token-3b9e41c07d2a5f68";
const BODY: &str =
    r#"{"event":"job.completed","event_occurred_at":"2026-11-20T15:04:05Z","job":{"id":"job_1"}}"#;

/// A daemon configuration in a temp dir: a Housecall Pro and a
/// ServiceTrade source, an admin API, and `extra` (an `[ingress]` section).
struct Setup {
    dir: tempfile::TempDir,
    admin: AdminApi,
}

impl Setup {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hcp.secret"), SECRET).unwrap();
        std::fs::write(dir.path().join("st.token"), ST_TOKEN).unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
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
deliveries = 2

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"

[[sources]]
name = "st"
vendor = "servicetrade"
secret_file = "st.token"

{extra}
"#
            ),
        )
        .unwrap();
        Setup { dir, admin }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("fieldhook.toml")
    }

    fn event_count(&self) -> usize {
        fieldhook_store::EventStore::open(&self.dir.path().join("data/db"))
            .unwrap()
            .event_count()
    }
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Connections that each sent the start of a request and nothing more.
async fn half_sent(url: &str, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let connect = TcpStream::connect(addr(url));
        let mut s = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .unwrap_or_else(|_| panic!("connection {i}: the listener takes no more connections"))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        s.write_all(b"POST /hooks/hcp HTTP/1.1\r\nhost: fieldhook\r\ncontent-type: applica")
            .await
            .unwrap();
        out.push(s);
    }
    out
}

/// Posts a correctly signed Housecall Pro webhook; its status, or `None`
/// when nothing came back within `within`.
async fn signed_webhook(url: &str, within: Duration) -> Option<u16> {
    // A fresh client: a fresh connection, queued behind the others.
    let client = reqwest::Client::new();
    let send = signed_housecall_pro(&client, &format!("{url}/hooks/hcp"), SECRET, BODY).send();
    match tokio::time::timeout(within, send).await {
        Ok(Ok(resp)) => Some(resp.status().as_u16()),
        Ok(Err(e)) => panic!("the webhook failed: {e}"),
        Err(_) => None,
    }
}

/// The open-file hard limit of this test process, after raising its soft
/// limit to it (the tests open hundreds of connections).
fn hard_limit() -> u64 {
    fieldhook::open_files::raise_limit().unwrap().now
}

/// How many descriptors process `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc")
        .count()
}

/// CPU time process `pid` has used, in clock ticks (user and system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc");
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Reads what the server sends until it closes the connection, within
/// `within`; `None` when it stays open.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut got)).await {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn half_sent_requests_beyond_the_starting_open_file_limit_do_not_keep_a_signed_webhook_from_being_stored()
 {
    if hard_limit() < 4096 {
        eprintln!("skipped: the open-file hard limit is under 4096");
        return;
    }
    let setup = Setup::new("[ingress]\nheader_read_timeout_ms = 3000\n");
    // A soft limit of 256, as a service manager might start it with; the
    // hard limit stays as it is.
    let daemon = DaemonProcess::start_with_open_files(&setup.config(), 256, None);
    let started = Instant::now();
    let mut held = half_sent(&daemon.url, 400).await;
    // Well inside the header timeout: answered because there are
    // descriptors to spare, not because the half-sent ones timed out.
    assert_eq!(
        signed_webhook(&daemon.url, Duration::from_secs(2)).await,
        Some(200),
        "a signed webhook behind 400 half-sent requests was not answered"
    );
    // And the half-sent ones are let go once the header timeout is up.
    for (i, stream) in held.iter_mut().enumerate() {
        let left = Duration::from_secs(10).saturating_sub(started.elapsed());
        assert!(
            read_until_closed(stream, left).await.is_some(),
            "half-sent connection {i} still open 10 s after it was opened"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
    daemon.stop();
    assert_eq!(setup.event_count(), 1);
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed_after_header_read_timeout_ms() {
    let setup = Setup::new("[ingress]\nheader_read_timeout_ms = 1000\n");
    let daemon = DaemonProcess::start(&setup.config());
    let started = Instant::now();
    let mut partial = half_sent(&daemon.url, 1).await.remove(0);
    let mut silent = TcpStream::connect(addr(&daemon.url)).await.unwrap();
    for (what, stream) in [("half-sent", &mut partial), ("silent", &mut silent)] {
        let closed = read_until_closed(stream, Duration::from_secs(10)).await;
        assert!(
            closed.is_some(),
            "the {what} connection is still open after 10 s"
        );
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(900),
            "{what} closed after {after:?}"
        );
    }
    daemon.stop();
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_with_the_vendors_timeout_status_and_nothing_is_stored() {
    let setup = Setup::new("[ingress]\nbody_read_timeout_ms = 1000\n");
    let daemon = DaemonProcess::start(&setup.config());
    // Housecall Pro gets 408; ServiceTrade reads any 4xx as delivered, so
    // it gets a 503 and retries.
    for (path, status) in [
        ("/hooks/hcp".to_owned(), "408"),
        (format!("/hooks/st/{ST_TOKEN}"), "503"),
    ] {
        let mut stream = TcpStream::connect(addr(&daemon.url)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: fieldhook\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            BODY.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&BODY.as_bytes()[..20]).await.unwrap();
        let started = Instant::now();
        let answer = read_until_closed(&mut stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{path}: no answer 10 s after the body stalled"));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer}"
        );
        assert!(started.elapsed() >= Duration::from_millis(900), "{path}");
    }
    daemon.stop();
    assert_eq!(setup.event_count(), 0, "nothing stored");
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_until_one_closes() {
    let setup = Setup::new("[ingress]\nmax_connections = 4\n");
    let daemon = DaemonProcess::start(&setup.config());
    let mut held = half_sent(&daemon.url, 4).await;
    let url = daemon.url.clone();
    let waiting = tokio::spawn(async move { signed_webhook(&url, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "a fifth connection was served");
    held.pop();
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert_eq!(status, Some(200));
    daemon.stop();
}

#[tokio::test]
async fn the_admin_api_and_the_store_keep_their_descriptors_when_webhook_connections_take_the_rest()
{
    if hard_limit() < 4096 {
        eprintln!("skipped: the open-file hard limit is under 4096");
        return;
    }
    // More connections allowed than the open-file limit holds.
    let setup = Setup::new("[ingress]\nmax_connections = 100000\nheader_read_timeout_ms = 2000\n");
    let daemon = DaemonProcess::start_with_open_files(&setup.config(), 512, Some(512));
    let held = half_sent(&daemon.url, 700).await;
    let health = tokio::time::timeout(
        Duration::from_secs(3),
        reqwest::get(format!("{}/healthz", setup.admin.url)),
    )
    .await;
    assert!(
        matches!(&health, Ok(Ok(r)) if r.status() == 200),
        "the admin API did not answer: {health:?}"
    );
    // Queued behind the 700, which the header timeout clears a slot-full
    // at a time; then stored like any other.
    assert_eq!(
        signed_webhook(&daemon.url, Duration::from_secs(30)).await,
        Some(200)
    );
    let events = setup.admin.get_json("/events").await;
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
    drop(held);
    daemon.stop();
}

#[tokio::test]
async fn when_accept_runs_out_of_descriptors_the_listener_pauses_and_serves_again_once_some_are_freed()
 {
    let prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output();
    if !prlimit.is_ok_and(|o| o.status.success()) || !std::path::Path::new("/proc/self/fd").exists()
    {
        eprintln!("skipped: needs prlimit and /proc");
        return;
    }
    let setup = Setup::new("[ingress]\nheader_read_timeout_ms = 1000\n");
    let daemon = DaemonProcess::start(&setup.config());
    // The first webhook opens the journal's file, which later ones reuse.
    assert_eq!(
        signed_webhook(&daemon.url, Duration::from_secs(5)).await,
        Some(200)
    );
    // Room for a few more descriptors than the daemon holds now, below
    // what it reckoned with at start: accept is what runs out.
    let pid = daemon.pid();
    let limit = open_descriptors(pid) + 6;
    let set = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit runs");
    assert!(set.success());
    let _held = half_sent(&daemon.url, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every descriptor number under the limit is in use.
    assert!(open_descriptors(pid) >= limit, "not starved");
    // Starved, the listener waits instead of retrying flat out.
    let (ticks, wall) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_second = (cpu_ticks(pid) - ticks) as f64 / wall.elapsed().as_secs_f64();
    assert!(
        per_second < 30.0,
        "{per_second} clock ticks a second while starved"
    );
    // And it serves again as the half-sent requests time out.
    assert_eq!(
        signed_webhook(&daemon.url, Duration::from_secs(15)).await,
        Some(200),
        "a signed webhook after the shortage was not answered"
    );
    daemon.stop();
    assert_eq!(setup.event_count(), 2);
}
