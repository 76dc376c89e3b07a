//! `fieldhook-bench peer`: the whole path on fieldhook and on Node-RED 4,
//! the same job, the same load generator, one run.
//!
//! The job: a 920-byte Housecall Pro `job.completed` webhook with a unique
//! job id in every request; keep completed jobs, map each to an accounting
//! record, POST it to a local sink, answer the webhook.
//!
//! - Node-RED 4: `http in` -> `function` -> `http request` -> `http
//!   response` (`host/bench/peer/node-red/`), inline, nothing stored. It is
//!   installed with npm into a cache directory on first use.
//! - fieldhook: the real `fieldhook serve` (a child process like Node-RED)
//!   with an `api-key` source and the accounting-sync plugin, durable at
//!   each step: the webhook is answered once stored, the delivery happens
//!   after.
//!
//! The sink counts distinct job ids: a rate is printed only for work that
//! arrived, and the run fails when an accepted webhook was not delivered.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::load::{self, Drive, MakeRequest, percentile};

/// What `fieldhook-bench peer` runs.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How long the load runs on each system, seconds.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Offered load in webhooks/s (open loop) instead of closed loop.
    #[arg(long)]
    rate: Option<u32>,
    /// Which systems to run.
    #[arg(long, value_enum, default_value_t = Only::Both)]
    only: Only,
    /// Where Node-RED is installed (default: `<target dir>/peer`).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// The `fieldhook` binary (default: the one beside this benchmark).
    #[arg(long)]
    fieldhook: Option<PathBuf>,
    /// The accounting-sync component (default: built into
    /// `<target dir>/guests` when missing).
    #[arg(long)]
    component: Option<PathBuf>,
    /// The kinds the plugin subscribes to (to see what each stage costs:
    /// a kind no webhook has measures ingest alone; the run then fails its
    /// delivery check).
    #[arg(long, default_value = "job.completed", hide = true)]
    subscribe: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    Both,
    Fieldhook,
    NodeRed,
}

/// The webhook body, with `JOB_ID` standing for the unique job id (20
/// characters, as Housecall Pro's ids are): 920 bytes once filled in.
const BODY: &str = r#"{"event":"job.completed","event_occurred_at":"2025-06-12T21:47:09Z","company_id":"d1c5e2a0-5b7e-4c3e-9a51-0f3c2b8e7a14","job":{"id":"JOB_ID","invoice_number":"1042","description":"Replace capacitor and contactor on 3-ton condenser","customer":{"id":"cus_4b1e0d9a77c2405e","first_name":"Dana","last_name":"Whitfield","email":"dana.whitfield@example.com","mobile_number":"5125550187"},"address":{"street":"4812 Ridgeview Dr","city":"Austin","state":"TX","zip":"78745"},"work_status":"completed","work_timestamps":{"started_at":"2025-06-12T19:31:02Z","completed_at":"2025-06-12T21:46:51Z"},"total_amount":24500,"outstanding_balance":24500,"line_items":[{"id":"li_5d2a","name":"Dual run capacitor 45/5 MFD","quantity":1,"unit_price":8900},{"id":"li_5d2b","name":"Contactor 2-pole 30A","quantity":1,"unit_price":5600}],"created_at":"2025-06-10T15:12:44Z","updated_at":"2025-06-12T21:47:08Z","notes":"gate 42B"}}"#;

/// The key the fieldhook source checks (`X-API-Key`).
const API_KEY: &str = "peer-bench-api-key-0123456789";

fn job_id(run: u64, i: usize) -> String {
    format!("job_{run:04x}{i:012x}")
}

/// Requests of one phase: the body with a fresh job id each, and the
/// phase's headers.
fn requests(url: &str, run: u64, extra_headers: &str) -> anyhow::Result<Arc<MakeRequest>> {
    let (host, path) = load::split_url(url)?;
    let (before, after) = BODY.split_once("JOB_ID").context("the body has JOB_ID")?;
    let extra = extra_headers.to_owned();
    Ok(Arc::new(move |i| {
        let id = job_id(run, i);
        let len = before.len() + id.len() + after.len();
        let mut out = format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{extra}content-length: {len}\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(before.as_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(after.as_bytes());
        Some(out)
    }))
}

// ---------------------------------------------------------------- sink

/// What arrived at the sink during one phase.
#[derive(Default)]
struct Arrivals {
    /// Distinct job ids (a redelivery is counted once).
    jobs: Mutex<HashSet<String>>,
    /// Every POST, redeliveries included.
    posts: AtomicU64,
    /// Receipt-to-delivery of fieldhook's records, ms (from the event id).
    e2e_ms: Mutex<Vec<u64>>,
    /// When the last new job arrived.
    last: Mutex<Option<Instant>>,
    /// Whether this phase's event ids carry their receive time (fieldhook's
    /// do; Node-RED's are made up, and it delivers inside the webhook).
    timed_ids: std::sync::atomic::AtomicBool,
}

impl Arrivals {
    fn reset(&self, timed_ids: bool) {
        self.timed_ids.store(timed_ids, Ordering::Relaxed);
        lock(&self.jobs).clear();
        self.posts.store(0, Ordering::Relaxed);
        lock(&self.e2e_ms).clear();
        *lock(&self.last) = None;
    }

    fn distinct(&self) -> usize {
        lock(&self.jobs).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(serde::Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    external_id: Option<&'a str>,
    #[serde(borrow)]
    fieldhook_event_id: Option<&'a str>,
}

/// The accounting system both systems deliver to: `POST /accounting`.
async fn sink(arrivals: Arc<Arrivals>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/accounting",
        axum::routing::post(move |body: axum::body::Bytes| {
            let a = arrivals.clone();
            async move {
                a.posts.fetch_add(1, Ordering::Relaxed);
                let Ok(record) = serde_json::from_slice::<Record<'_>>(&body) else {
                    return (axum::http::StatusCode::BAD_REQUEST, "not a record");
                };
                let Some(job) = record.external_id else {
                    return (axum::http::StatusCode::BAD_REQUEST, "no external_id");
                };
                if !lock(&a.jobs).insert(job.to_owned()) {
                    return (axum::http::StatusCode::OK, "ok");
                }
                if let Some(at) = record
                    .fieldhook_event_id
                    .filter(|_| a.timed_ids.load(Ordering::Relaxed))
                    .and_then(fieldhook_core::event::event_time_ms)
                {
                    let now = fieldhook_core::time::now_ms();
                    lock(&a.e2e_ms).push(now.saturating_sub(at));
                }
                *lock(&a.last) = Some(Instant::now());
                (axum::http::StatusCode::OK, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/accounting"))
}

// ---------------------------------------------------------------- servers

/// A server process under test, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM for a clean stop; kill after 10 s.
        let pid = self.child.id();
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// CPU time used by the process so far (user + system), seconds.
    fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())) else {
            return 0.0;
        };
        // Fields after the command name (which may hold spaces): utime is
        // the 14th field, stime the 15th, in clock ticks.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return 0.0;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Clock ticks are USER_HZ: 100 on Linux.
        (ticks(11) + ticks(12)) / 100.0
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn node_red_assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer/node-red")
}

/// Installs the pinned Node-RED into `cache` unless it is there already.
fn install_node_red(cache: &Path) -> anyhow::Result<PathBuf> {
    let assets = node_red_assets();
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(assets.join("package.json"))?)?;
    let version = want["dependencies"]["node-red"]
        .as_str()
        .context("package.json pins node-red")?
        .to_owned();
    let red = cache.join("node_modules/node-red");
    let installed = std::fs::read(red.join("package.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    if installed.as_deref() != Some(version.as_str()) {
        eprintln!(
            "installing node-red {version} into {} (npm ci)",
            cache.display()
        );
        std::fs::create_dir_all(cache)?;
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(assets.join(f), cache.join(f))?;
        }
        let status = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(cache)
            .status()
            .context("cannot run npm: install Node.js 18+ and npm")?;
        if !status.success() {
            bail!(
                "`npm ci` of node-red {version} into {} failed",
                cache.display()
            );
        }
    }
    Ok(red.join("red.js"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_node_red(cache: &Path, sink_url: &str, scratch: &Path) -> anyhow::Result<Server> {
    let red = install_node_red(cache)?;
    let port = free_port()?;
    let user_dir = scratch.join("node-red-user");
    std::fs::create_dir_all(&user_dir)?;
    let child = Command::new("node")
        .arg(red)
        .arg("--settings")
        .arg(node_red_assets().join("settings.js"))
        .env("PORT", port.to_string())
        .env("NODE_RED_USER_DIR", &user_dir)
        .env("SINK_URL", sink_url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start node")?;
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}/webhook"),
    };
    // Ready once the flow answers (404 until the flows run).
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = client
            .post(&server.url)
            .header("content-type", "application/json")
            .body(r#"{"event":"readiness.probe"}"#)
            .send()
            .await;
        if probe.is_ok_and(|r| r.status().is_success()) {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("Node-RED did not start within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The accounting-sync component, built for wasm32-wasip2 when missing.
fn component(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(c) = given {
        return Ok(c);
    }
    let guests = target_dir().join("guests");
    let path = guests.join("wasm32-wasip2/release/accounting_sync.wasm");
    if !path.exists() {
        eprintln!("building plugins/accounting-sync for wasm32-wasip2");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(workspace())
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "accounting-sync",
                "--target-dir",
            ])
            .arg(&guests)
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
            .status()?;
        if !status.success() {
            bail!(
                "building accounting-sync failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)"
            );
        }
    }
    Ok(path)
}

async fn start_fieldhook(
    binary: &Path,
    component: &Path,
    sink_url: &str,
    scratch: &Path,
    kinds: &str,
) -> anyhow::Result<Server> {
    let dir = scratch.join("fieldhook");
    let plugin = dir.join("plugins/accounting-sync");
    std::fs::create_dir_all(&plugin)?;
    std::fs::copy(component, plugin.join("plugin.wasm"))?;
    let sink_port = sink_url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.split('/').next())
        .context("the sink listens on 127.0.0.1")?;
    std::fs::write(
        plugin.join("plugin.toml"),
        format!(
            r#"name = "accounting-sync"
version = "0.1.0"
component = "plugin.wasm"

[[subscriptions]]
source = "hcp"
kinds = ["{kinds}"]

[limits]
memory_mb = 32
timeout_ms = 2000
cpu_ms = 500

[[http]]
scheme = "http"
host = "127.0.0.1"
port = {sink_port}
methods = ["POST"]
path = "/accounting"

[config]
endpoint = "{sink_url}"
"#
        ),
    )?;
    std::fs::write(dir.join("hcp.key"), API_KEY)?;
    std::fs::write(
        dir.join("fieldhook.toml"),
        r#"listen = "127.0.0.1:0"
data_dir = "data"
plugins_dir = "plugins"

[[sources]]
name = "hcp"
vendor = "api-key"
secret_file = "hcp.key"
kind_field = "/event"
id_field = "/job/id"
"#,
    )?;
    let mut child = Command::new(binary)
        .args(["serve", "--config"])
        .arg(dir.join("fieldhook.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("fieldhook listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let mut server = Server {
        child,
        url: String::new(),
    };
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .context("fieldhook did not start within 120 s")?;
    server.url = format!("{base}/hooks/hcp");
    Ok(server)
}

// ---------------------------------------------------------------- phases

/// One system's figures.
struct Phase {
    name: &'static str,
    accepted: usize,
    errors: usize,
    delivered: usize,
    posts: u64,
    /// From the first webhook to the last new delivery.
    delivering: Duration,
    webhook_us: Vec<u64>,
    e2e_ms: Vec<u64>,
    server_cpu: f64,
    bench_cpu: f64,
    backlog_at_end: usize,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.delivering.as_secs_f64().max(1e-9)
    }
}

async fn phase(
    name: &'static str,
    server: &Server,
    make: Arc<MakeRequest>,
    drive: Drive,
    arrivals: &Arc<Arrivals>,
    timed_ids: bool,
) -> anyhow::Result<Phase> {
    arrivals.reset(timed_ids);
    let cpu0 = server.cpu_seconds();
    let bench0 = crate::cpu_seconds();
    let started = Instant::now();
    let mut r = load::run(&server.url, make, drive).await;
    let backlog_at_end = r.latencies_us.len().saturating_sub(arrivals.distinct());
    // Every accepted webhook must arrive; give up after 30 s of no progress.
    let accepted = r.latencies_us.len();
    let mut seen = arrivals.distinct();
    let mut progress = Instant::now();
    while seen < accepted && progress.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = arrivals.distinct();
        if now > seen {
            seen = now;
            progress = Instant::now();
        }
    }
    let last = (*lock(&arrivals.last)).unwrap_or_else(Instant::now);
    r.latencies_us.sort_unstable();
    let mut e2e_ms = lock(&arrivals.e2e_ms).clone();
    e2e_ms.sort_unstable();
    Ok(Phase {
        name,
        accepted,
        errors: r.errors,
        delivered: arrivals.distinct(),
        posts: arrivals.posts.load(Ordering::Relaxed),
        delivering: last.saturating_duration_since(started),
        webhook_us: r.latencies_us,
        e2e_ms,
        server_cpu: server.cpu_seconds() - cpu0,
        bench_cpu: crate::cpu_seconds() - bench0,
        backlog_at_end,
    })
}

fn print(p: &Phase) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{:<10} delivered {:>7.0} events/s ({}/{} accepted webhooks in {:.1} s; {} POSTs)   webhook p50 {:.1} ms p99 {:.1} ms   receive-to-delivery p50 {} p99 {}   server cpu {:.0} us/event   load generator + sink {:.0} us/event   backlog when the load stopped {}",
        p.name,
        p.rate(),
        p.delivered,
        p.accepted,
        p.delivering.as_secs_f64(),
        p.posts,
        ms(percentile(&p.webhook_us, 0.5)),
        ms(percentile(&p.webhook_us, 0.99)),
        if p.e2e_ms.is_empty() {
            "= webhook".to_owned()
        } else {
            format!("{} ms", percentile(&p.e2e_ms, 0.5))
        },
        if p.e2e_ms.is_empty() {
            "= webhook".to_owned()
        } else {
            format!("{} ms", percentile(&p.e2e_ms, 0.99))
        },
        p.server_cpu * 1e6 / p.delivered.max(1) as f64,
        p.bench_cpu * 1e6 / p.delivered.max(1) as f64,
        p.backlog_at_end,
    );
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let scratch = crate::tempfile_dir()?;
    let arrivals = Arc::new(Arrivals::default());
    let sink_url = sink(arrivals.clone()).await?;
    let drive = Drive {
        connections: args.connections,
        rate: args.rate,
        duration: Some(Duration::from_secs(args.duration)),
    };
    println!(
        "fieldhook-bench peer: {} s per system, {} connections, {}, 920-byte Housecall Pro job.completed bodies, unique job ids, {} cores",
        args.duration,
        args.connections,
        match args.rate {
            Some(r) => format!("open loop at {r} webhooks/s"),
            None => "closed loop".to_owned(),
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let mut phases = Vec::new();
    let run_id = u64::from(std::process::id() & 0xffff);
    if args.only != Only::Fieldhook {
        let cache = args
            .cache
            .clone()
            .unwrap_or_else(|| target_dir().join("peer"));
        let server = start_node_red(&cache, &sink_url, &scratch).await?;
        // A short warm-up (JIT, connections), not measured.
        let warm = Drive {
            duration: Some(Duration::from_secs(2)),
            ..drive
        };
        let _ = load::run(&server.url, requests(&server.url, run_id, "")?, warm).await;
        let p = phase(
            "node-red 4",
            &server,
            requests(&server.url, run_id + 1, "")?,
            drive,
            &arrivals,
            false,
        )
        .await?;
        print(&p);
        phases.push(p);
        drop(server);
    }
    if args.only != Only::NodeRed {
        let binary = match args.fieldhook.clone() {
            Some(b) => b,
            None => std::env::current_exe()?.with_file_name("fieldhook"),
        };
        if !binary.exists() {
            bail!(
                "{} not found: build it beside the benchmark (`cargo build --release -p fieldhook -p fieldhook-bench`) or pass --fieldhook",
                binary.display()
            );
        }
        let component = component(args.component.clone())?;
        let server =
            start_fieldhook(&binary, &component, &sink_url, &scratch, &args.subscribe).await?;
        let header = format!("x-api-key: {API_KEY}\r\n");
        let warm = Drive {
            duration: Some(Duration::from_secs(2)),
            ..drive
        };
        let _ = load::run(
            &server.url,
            requests(&server.url, run_id + 2, &header)?,
            warm,
        )
        .await;
        // Let the warm-up drain before measuring.
        let _ = wait_quiet(&arrivals).await;
        let p = phase(
            "fieldhook",
            &server,
            requests(&server.url, run_id + 3, &header)?,
            drive,
            &arrivals,
            true,
        )
        .await?;
        print(&p);
        phases.push(p);
        drop(server);
    }
    if let [node_red, fieldhook] = phases.as_slice() {
        println!(
            "fieldhook delivers {:.2}x what Node-RED 4 delivers on this job (durable at each step vs. nothing stored)",
            fieldhook.rate() / node_red.rate().max(1e-9)
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    for p in &phases {
        if p.accepted == 0 {
            bail!("{}: no webhook was accepted", p.name);
        }
        if p.delivered < p.accepted {
            bail!(
                "{}: {} accepted webhooks were never delivered ({} of {})",
                p.name,
                p.accepted - p.delivered,
                p.delivered,
                p.accepted
            );
        }
        if p.errors > 0 {
            bail!("{}: {} webhooks were refused or failed", p.name, p.errors);
        }
    }
    Ok(())
}

/// Waits until nothing new arrives at the sink for half a second.
async fn wait_quiet(arrivals: &Arrivals) -> usize {
    let mut last = arrivals.posts.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = arrivals.posts.load(Ordering::Relaxed);
        if now == last {
            return now as usize;
        }
        last = now;
    }
}
