//! Load generator for fieldhook's ingest path.
//!
//! `fieldhook-bench ingest` starts, in this process, the real webhook
//! listener twice on 127.0.0.1: once storing durably (group commit) and once
//! with a sink that discards (the baseline: same routing, verification and
//! HTTP stack, no store). It then sends the same signed Standard Webhooks
//! requests (unique ids, 1 KiB bodies by default) over many connections to
//! each and prints throughput and latency percentiles for both.
//!
//! `fieldhook-bench plugin-call` and `hot-reload` measure the plugin
//! runtime: see `plugin.rs`.

mod plugin;

// glibc malloc was about 15% of the ingest path's CPU (lock contention,
// consolidation, page faults from trimming); mimalloc keeps per-thread heaps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use fieldhook::config::Config;
use fieldhook::ingress::{self, EventSink, StoreSink};
use fieldhook_core::event::{Message, NewEvent};
use fieldhook_store::{EventStore, Ingested, StoreError};
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};

mod load;
mod peer;
mod pipeline;
mod plugin_overhead;
mod restart;

use load::{Drive, MakeRequest, RunResult, report, run};

#[derive(Parser)]
#[command(name = "fieldhook-bench", about = "Benchmarks for fieldhook")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest: verify + durable write + 2xx, against a no-store baseline.
    Ingest {
        /// Requests per run.
        #[arg(long, default_value_t = 50_000)]
        requests: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Body size in bytes.
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
        /// Offered load in requests/s (open loop: each request is sent at
        /// its scheduled time and its latency counts from then, so falling
        /// behind shows). Without it, each connection sends its next request
        /// as soon as the previous answer arrives (closed loop: the most the
        /// server can take).
        #[arg(long)]
        rate: Option<u32>,
    },
    /// One plugin call (filter + map of a 1 KiB event): fresh pooled
    /// instance against warm reused instance.
    PluginCall {
        /// A Rust plugin component that maps a job-completed event to one
        /// request (plugins/accounting-sync built for wasm32-wasip2).
        #[arg(long)]
        component: std::path::PathBuf,
        /// A guest that does nothing (tests/guests/trapper without a mode,
        /// a fieldhook:plugin@0.2 guest), measured in the same run as the
        /// baseline: the host's share of a call.
        #[arg(long)]
        baseline: Option<std::path::PathBuf>,
        /// Calls per mode.
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
    /// Hot reload: a new version's files land in a watched plugins
    /// directory; time until it serves.
    HotReload {
        /// The plugin component to deploy.
        #[arg(long)]
        component: std::path::PathBuf,
        /// Deployments per case.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
    /// The whole path: ingest -> plugin -> delivery to a local fake
    /// destination, against an ingest-only baseline.
    Pipeline {
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
        /// The accounting-sync component (built by the end-to-end tests).
        #[arg(
            long,
            default_value = "target/guests/wasm32-wasip2/release/accounting_sync.wasm"
        )]
        component: std::path::PathBuf,
    },
    /// Ingest into an empty store vs. one already holding `--stored` events.
    Filled {
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
        #[arg(long, default_value_t = 1_000_000)]
        stored: usize,
    },
    /// The store alone: concurrent writers ingesting 1 KiB events, no HTTP.
    Store {
        #[arg(long, default_value_t = 40_000)]
        events: usize,
        /// Concurrent writers.
        #[arg(long, default_value_t = 64)]
        writers: usize,
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
    },
    /// Per-language plugin overhead: compile, cached load, call p50/p99.
    PluginOverhead(plugin_overhead::Args),
    /// The whole path on fieldhook against Node-RED 4: the same job, the
    /// same load generator, one run (Node-RED is installed with npm).
    Peer(peer::Args),
    /// Restart to ready on stores of growing size: start-up must not grow
    /// with finished history.
    Restart(restart::Args),
}

const SECRET_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() -> anyhow::Result<()> {
    // As the daemon does (fieldhook::memory says why).
    if let Err(e) = fieldhook::memory::disable_transparent_huge_pages() {
        eprintln!("warning: cannot turn off transparent huge pages: {e}");
    }
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Ingest {
            requests,
            connections,
            body_bytes,
            rate,
        } => rt.block_on(ingest(requests, connections, body_bytes, rate)),
        Command::PluginCall {
            component,
            baseline,
            iterations,
        } => rt.block_on(plugin::call(component, baseline, iterations)),
        Command::Store {
            events,
            writers,
            body_bytes,
        } => rt.block_on(store_only(events, writers, body_bytes)),
        Command::HotReload { component, rounds } => {
            rt.block_on(plugin::hot_reload(component, rounds))
        }
        Command::Pipeline {
            requests,
            connections,
            body_bytes,
            component,
        } => rt.block_on(pipeline::pipeline(
            requests,
            connections,
            body_bytes,
            component,
        )),
        Command::Filled {
            requests,
            connections,
            body_bytes,
            stored,
        } => rt.block_on(pipeline::filled(requests, connections, body_bytes, stored)),
        Command::PluginOverhead(args) => rt.block_on(plugin_overhead::run(args)),
        Command::Peer(args) => rt.block_on(peer::run(args)),
        Command::Restart(args) => rt.block_on(restart::run(args)),
    }
}

/// The baseline sink: answers as if stored, stores nothing.
struct Discard;

impl EventSink for Discard {
    fn ingest(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<Ingested>, StoreError>> {
        Box::pin(async move {
            Ok(events
                .iter()
                .map(|_| Ingested::Stored("evt_discarded".into()))
                .collect())
        })
    }
}

struct Signed {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

fn make_requests(n: usize, body_bytes: usize) -> anyhow::Result<Vec<Signed>> {
    let key = base64::engine::general_purpose::STANDARD.decode(SECRET_B64)?;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        .to_string();
    (0..n)
        .map(|i| {
            let id = format!("msg_bench_{i:010}");
            let head = format!(r#"{{"type":"job.completed","data":{{"id":"job_{i}","notes":""#);
            let pad = body_bytes.saturating_sub(head.len() + 3);
            let body = format!("{head}{}\"}}}}", "x".repeat(pad)).into_bytes();
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key)?;
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(&body);
            let signature = format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            );
            Ok(Signed {
                id,
                timestamp: ts.clone(),
                signature,
                body,
            })
        })
        .collect()
}

/// Requests for `url` made from a prepared list, each sent once.
fn signed_requests(url: &str, requests: Arc<Vec<Signed>>) -> anyhow::Result<Arc<MakeRequest>> {
    let (host, path) = load::split_url(url)?;
    Ok(Arc::new(move |i| {
        requests.get(i).map(|r| r.http1(&host, &path))
    }))
}

/// Closed loop over `connections`, each prepared request once.
fn closed(connections: usize) -> Drive {
    Drive {
        connections,
        rate: None,
        duration: None,
    }
}

impl Signed {
    fn http1(&self, host: &str, path: &str) -> Vec<u8> {
        let mut out = format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             webhook-id: {}\r\nwebhook-timestamp: {}\r\nwebhook-signature: {}\r\n\
             content-length: {}\r\n\r\n",
            self.id,
            self.timestamp,
            self.signature,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

async fn ingest(
    requests: usize,
    connections: usize,
    body_bytes: usize,
    rate: Option<u32>,
) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("bench.secret"), format!("whsec_{SECRET_B64}"))?;
    let config = Config::parse(
        r#"
        listen = "127.0.0.1:0"
        max_body_bytes = 65536
        [[sources]]
        name = "bench"
        vendor = "standard-webhooks"
        secret_file = "bench.secret"
        "#,
        &dir,
    )?;
    let store = EventStore::open(&dir.join("db")).context("open store")?;
    let durable: Arc<dyn EventSink> = Arc::new(StoreSink {
        store: store.clone(),
        dedupe_window_ms: config.dedupe_window_secs * 1000,
        on_stored: Box::new(|| {}),
    });
    let baseline: Arc<dyn EventSink> = Arc::new(Discard);

    let mut urls = Vec::new();
    for sink in [baseline, durable] {
        let app = ingress::router(&config.ingress(), sink);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        urls.push(format!("http://{addr}/hooks/bench"));
    }

    println!(
        "fieldhook-bench ingest: {requests} requests, {connections} connections, {body_bytes}-byte bodies, {}, {} cores",
        match rate {
            Some(r) => format!("open loop at {r} requests/s"),
            None => "closed loop".to_owned(),
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let signed = Arc::new(make_requests(requests, body_bytes)?);
    // Warm-up on the baseline, then the two measured runs.
    let warm = Arc::new(make_requests(2_000.min(requests), body_bytes)?);
    let _ = run(
        &urls[0],
        signed_requests(&urls[0], warm)?,
        closed(connections),
    )
    .await;
    let cpu = cpu_seconds();
    let drive = Drive {
        connections,
        rate,
        duration: None,
    };
    let mut base = run(&urls[0], signed_requests(&urls[0], signed.clone())?, drive).await;
    report("baseline (no store)", &mut base);
    let base_cpu = cpu_seconds() - cpu;
    let before = store.commit_stats();
    let cpu = cpu_seconds();
    let mut stored = run(&urls[1], signed_requests(&urls[1], signed)?, drive).await;
    report("durable (group commit)", &mut stored);
    let stored_cpu = cpu_seconds() - cpu;
    println!(
        "cpu (server + load generator): baseline {:.0} us/request, durable {:.0} us/request",
        base_cpu * 1e6 / requests as f64,
        stored_cpu * 1e6 / requests as f64
    );
    let after = store.commit_stats();
    let flushes = after.flushes - before.flushes;
    anyhow::ensure!(
        base.errors == 0 && stored.errors == 0,
        "requests failed: {} on the baseline, {} on the durable server",
        base.errors,
        stored.errors
    );
    let events = store.event_count();
    anyhow::ensure!(
        events == requests,
        "{events} events stored for {requests} accepted requests"
    );
    println!(
        "group commit: {} writes in {} flushes ({:.1} writes per fsync); events stored: {}",
        after.writes - before.writes,
        flushes,
        (after.writes - before.writes) as f64 / flushes.max(1) as f64,
        events
    );
    println!(
        "slowest group: write {:.2} ms, flush + fdatasync {:.2} ms",
        after.slowest_write_us as f64 / 1000.0,
        after.slowest_sync_us as f64 / 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A verified Standard Webhooks `job.completed` event as the listener hands
/// it to the store, with its dedupe key and body.
fn stored_event(dedupe_key: String, body: Vec<u8>) -> NewEvent {
    NewEvent {
        source: "bench".into(),
        vendor: "standard-webhooks".into(),
        kind: "job.completed".into(),
        entity: None,
        occurred_at: None,
        dedupe_key: Some(dedupe_key),
        parsed: true,
        received_at_ms: fieldhook_core::time::now_ms(),
        message: std::sync::Arc::new(Message {
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body,
        }),
    }
}

async fn store_only(events: usize, writers: usize, body_bytes: usize) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let store = EventStore::open(&dir.join("db")).context("open store")?;
    let body = vec![b'x'; body_bytes];
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, next, body) = (store.clone(), next.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < events {
                let event = stored_event(ulid::Ulid::new().to_string(), body.clone());
                let t = Instant::now();
                store.ingest(vec![event], 60_000).await?;
                lat.push(t.elapsed().as_micros() as u64);
            }
            Ok::<_, StoreError>(lat)
        }));
    }
    let mut r = RunResult {
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        errors: 0,
    };
    for t in tasks {
        r.latencies_us.extend(t.await??);
    }
    r.elapsed = started.elapsed();
    let used = cpu_seconds() - cpu;
    println!("fieldhook-bench store: {events} events of {body_bytes} bytes, {writers} writers");
    report("store.ingest", &mut r);
    let stats = store.commit_stats();
    println!(
        "cpu {:.0} us/event; {:.1} writes per fsync",
        used * 1e6 / events as f64,
        stats.writes as f64 / stats.flushes.max(1) as f64
    );
    anyhow::ensure!(
        store.event_count() == events,
        "{} events stored of {events}",
        store.event_count()
    );
    store.close().await?;
    // The dedupe index is a file: reopening reads none of it, and the first
    // ingest after looks its key up like any other.
    let t = Instant::now();
    let store = EventStore::open(&dir.join("db")).context("reopen store")?;
    let opened = t.elapsed();
    let event = stored_event(ulid::Ulid::new().to_string(), body);
    store.ingest(vec![event], 7 * 86_400_000).await?;
    println!(
        "after reopening ({events} events stored): open {:.0} ms, first ingest (7-day dedupe window) {:.1} ms",
        opened.as_secs_f64() * 1000.0,
        (t.elapsed() - opened).as_secs_f64() * 1000.0
    );
    store.close().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// User + system CPU time of this process so far, from /proc (Linux); 0
/// elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces): utime is
    // the 12th, stime the 13th, in clock ticks (100 per second on Linux).
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
    (ticks(11) + ticks(12)) / 100.0
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("fieldhook-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
