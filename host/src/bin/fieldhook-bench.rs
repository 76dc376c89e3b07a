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
//! runtime: see `bench/plugin.rs`.

#[path = "../bench/plugin.rs"]
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
use fieldhook::store::{Ingested, NewEvent, Store, StoreError};
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};

#[path = "fieldhook-bench/pipeline.rs"]
mod pipeline;
#[path = "bench/plugin_overhead.rs"]
mod plugin_overhead;

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
    },
    /// One plugin call (filter + map of a 1 KiB event): fresh pooled
    /// instance against warm reused instance.
    PluginCall {
        /// A Rust plugin component that maps a job-completed event to one
        /// request (plugins/accounting-sync built for wasm32-wasip2).
        #[arg(long)]
        component: std::path::PathBuf,
        /// A guest that does nothing (tests/guests/trapper without a mode),
        /// measured in the same run as the baseline: the host's share.
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
    /// Per-language plugin overhead: compile, cached load, call p50/p99.
    PluginOverhead(plugin_overhead::Args),
}

const SECRET_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Ingest {
            requests,
            connections,
            body_bytes,
        } => rt.block_on(ingest(requests, connections, body_bytes)),
        Command::PluginCall {
            component,
            baseline,
            iterations,
        } => rt.block_on(plugin::call(component, baseline, iterations)),
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

struct RunResult {
    elapsed: Duration,
    latencies_us: Vec<u64>,
    errors: usize,
}

async fn run(url: &str, requests: Arc<Vec<Signed>>, connections: usize) -> RunResult {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .build()
            .expect("client builds");
        let next = next.clone();
        let requests = requests.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = requests.get(i) else { break };
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &r.id)
                    .header("webhook-timestamp", &r.timestamp)
                    .header("webhook-signature", &r.signature)
                    .body(r.body.clone())
                    .send()
                    .await;
                match resp {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = resp.bytes().await;
                    }
                    _ => errors += 1,
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            latencies_us.extend(l);
            errors += e;
        }
    }
    RunResult {
        elapsed: started.elapsed(),
        latencies_us,
        errors,
    }
}

fn report(name: &str, r: &mut RunResult) {
    r.latencies_us.sort_unstable();
    let n = r.latencies_us.len().max(1);
    let pct = |p: f64| {
        r.latencies_us
            .get(((n as f64 * p) as usize).min(n - 1))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{name:<22} {:>9.0} req/s   p50 {:>6.2} ms   p90 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   errors {}",
        r.latencies_us.len() as f64 / r.elapsed.as_secs_f64(),
        pct(0.50) as f64 / 1000.0,
        pct(0.90) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        r.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        r.errors
    );
}

async fn ingest(requests: usize, connections: usize, body_bytes: usize) -> anyhow::Result<()> {
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
    let store = Store::open(&dir.join("db")).context("open store")?;
    let durable: Arc<dyn EventSink> = Arc::new(StoreSink {
        store: store.clone(),
        dedupe_window_ms: config.dedupe_window_secs * 1000,
        on_stored: Box::new(|| {}),
    });
    let baseline: Arc<dyn EventSink> = Arc::new(Discard);

    let mut urls = Vec::new();
    for sink in [baseline, durable] {
        let app = ingress::router(&config, sink);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        urls.push(format!("http://{addr}/hooks/bench"));
    }

    println!(
        "fieldhook-bench ingest: {requests} requests, {connections} connections, {body_bytes}-byte bodies, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let signed = Arc::new(make_requests(requests, body_bytes)?);
    // Warm-up on the baseline, then the two measured runs.
    let _ = run(
        &urls[0],
        Arc::new(make_requests(2_000.min(requests), body_bytes)?),
        connections,
    )
    .await;
    let cpu = cpu_seconds();
    let mut base = run(&urls[0], signed.clone(), connections).await;
    report("baseline (no store)", &mut base);
    let base_cpu = cpu_seconds() - cpu;
    let before = store.commit_stats();
    let cpu = cpu_seconds();
    let mut stored = run(&urls[1], signed, connections).await;
    report("durable (group commit)", &mut stored);
    let stored_cpu = cpu_seconds() - cpu;
    println!(
        "cpu (server + load generator): baseline {:.0} us/request, durable {:.0} us/request",
        base_cpu * 1e6 / requests as f64,
        stored_cpu * 1e6 / requests as f64
    );
    let after = store.commit_stats();
    let flushes = after.flushes - before.flushes;
    println!(
        "group commit: {} writes in {} flushes ({:.1} writes per fsync); events stored: {}",
        after.writes - before.writes,
        flushes,
        (after.writes - before.writes) as f64 / flushes.max(1) as f64,
        store.event_count()
    );
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
