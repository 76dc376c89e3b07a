//! `fieldhook-bench pipeline` and `fieldhook-bench filled`.
//!
//! - `pipeline`: the whole path in one process: the real daemon
//!   ([`Daemon::start`]) with the accounting-sync plugin, signed Standard
//!   Webhooks in, each event's mapped request out to a local fake
//!   destination. Baseline in the same run: the same daemon and requests
//!   with no plugin subscribed (ingest only).
//! - `filled`: ingest throughput into an empty store, then into a store
//!   already holding `--stored` events (one million by default).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use fieldhook::config::Config;
use fieldhook::daemon::Daemon;
use fieldhook::ingress::{self, EventSink, StoreSink};
use fieldhook_core::event::NewEvent;
use fieldhook_store::EventStore;

use super::{
    SECRET_B64, closed, make_requests, report, run, signed_requests, stored_event, tempfile_dir,
};

fn config_text(plugins: bool) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
max_body_bytes = 65536
plugins_dir = "{}"
[retention]
sweep_secs = 3600
[[sources]]
name = "bench"
vendor = "standard-webhooks"
secret_file = "bench.secret"
"#,
        if plugins { "plugins" } else { "no-plugins" }
    )
}

/// Arrival times of deliveries at the fake destination, with the event time
/// the plugin put in the body.
#[derive(Default)]
struct Arrivals {
    /// Distinct events delivered (a redelivery counts once).
    events: Mutex<std::collections::HashSet<String>>,
    count: AtomicUsize,
    e2e_ms: Mutex<Vec<u64>>,
    last: Mutex<Option<Instant>>,
}

async fn destination(arrivals: Arc<Arrivals>) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let a = arrivals.clone();
        async move {
            let now_ms = fieldhook_core::time::now_ms();
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return "not a record";
            };
            let Some(event) = v["fieldhook_event_id"].as_str() else {
                return "no event id";
            };
            let first = a
                .events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(event.to_owned());
            if !first {
                return "ok";
            }
            if let Some(at) = fieldhook_core::event::event_time_ms(event) {
                a.e2e_ms
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(now_ms.saturating_sub(at));
            }
            a.count.fetch_add(1, Ordering::Relaxed);
            *a.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

pub async fn pipeline(
    requests: usize,
    connections: usize,
    body_bytes: usize,
    component: std::path::PathBuf,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        component.exists(),
        "{} not found: build it with `cargo test -p fieldhook --test all spine` (builds the guests) or pass --component",
        component.display()
    );
    let arrivals = Arc::new(Arrivals::default());
    let dest = destination(arrivals.clone()).await?;
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("bench.secret"), format!("whsec_{SECRET_B64}"))?;
    let plugin_dir = dir.join("plugins").join("accounting-sync");
    std::fs::create_dir_all(&plugin_dir)?;
    std::fs::create_dir_all(dir.join("no-plugins"))?;
    std::fs::copy(&component, plugin_dir.join("plugin.wasm"))?;
    std::fs::write(
        plugin_dir.join("plugin.toml"),
        format!(
            "name = \"accounting-sync\"\nversion = \"0.1.0\"\n[[subscriptions]]\nsource = \"bench\"\n\
             [[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\nmethods = [\"POST\"]\npath = \"/books/\"\n\
             [config]\nendpoint = \"{dest}/books/jobs\"\n",
            port = dest.rsplit(':').next().unwrap_or_default()
        ),
    )?;
    println!(
        "fieldhook-bench pipeline: {requests} events, {connections} connections, {body_bytes}-byte bodies, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    for plugins in [false, true] {
        let data = dir.join(if plugins {
            "data-pipeline"
        } else {
            "data-baseline"
        });
        let mut config = Config::parse(&config_text(plugins), &dir)?;
        config.data_dir = data;
        let daemon = Daemon::start(config).await?;
        let url = format!("http://{}/hooks/bench", daemon.addr);
        let signed = Arc::new(make_requests(requests, body_bytes)?);
        let started = Instant::now();
        let mut r = run(&url, signed_requests(&url, signed)?, closed(connections)).await;
        anyhow::ensure!(
            r.errors == 0 && r.latencies_us.len() == requests,
            "{} of {requests} webhooks were not accepted",
            requests - r.latencies_us.len()
        );
        if !plugins {
            report("baseline: ingest only", &mut r);
        } else {
            report("ingest (with pipeline)", &mut r);
            let deadline = Instant::now() + Duration::from_secs(600);
            while arrivals.count.load(Ordering::Relaxed) < requests && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let delivered = arrivals.count.load(Ordering::Relaxed);
            let last = arrivals
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(Instant::now);
            let mut e2e = arrivals
                .e2e_ms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            e2e.sort_unstable();
            let n = e2e.len().max(1);
            let pct = |p: f64| {
                e2e.get(((n as f64 * p) as usize).min(n - 1))
                    .copied()
                    .unwrap_or(0)
            };
            println!(
                "whole path             {:>9.0} events/s delivered ({delivered}/{requests} in {:.2} s)   end-to-end p50 {} ms   p90 {} ms   p99 {} ms   max {} ms",
                delivered as f64 / last.duration_since(started).as_secs_f64(),
                last.duration_since(started).as_secs_f64(),
                pct(0.5),
                pct(0.9),
                pct(0.99),
                e2e.last().copied().unwrap_or(0)
            );
            anyhow::ensure!(
                delivered >= requests,
                "only {delivered} of {requests} events were delivered: see the daemon's log for dead letters"
            );
        }
        daemon.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub async fn filled(
    requests: usize,
    connections: usize,
    body_bytes: usize,
    stored: usize,
) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("bench.secret"), format!("whsec_{SECRET_B64}"))?;
    let config = Config::parse(&config_text(false), &dir)?;
    println!(
        "fieldhook-bench filled: {requests} requests, {connections} connections, {body_bytes}-byte bodies, {stored} events pre-stored, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    // The first run warms up the process (allocator, connections) and is
    // not a measurement.
    for (label, prefill) in [
        ("warm-up (not measured)", 0),
        ("empty store", 0),
        ("filled store", stored),
    ] {
        let db = dir.join(format!("db-{label}-{prefill}").replace(' ', "_"));
        let store = EventStore::open(&db).context("open store")?;
        if prefill > 0 {
            let t = Instant::now();
            let body = vec![b'x'; body_bytes];
            let mut done = 0;
            while done < prefill {
                let batch: Vec<NewEvent> = (done..(done + 1000).min(prefill))
                    .map(|i| stored_event(format!("prefill_{i:010}"), body.clone()))
                    .collect();
                done += batch.len();
                store
                    .ingest(batch, config.dedupe_window_secs * 1000)
                    .await?;
            }
            store.sync().await?;
            println!(
                "pre-stored {prefill} events in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        let sink: Arc<dyn EventSink> = Arc::new(StoreSink {
            store: store.clone(),
            dedupe_window_ms: config.dedupe_window_secs * 1000,
            on_stored: Box::new(|| {}),
        });
        let app = ingress::router(&config.ingress(), sink);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let signed = Arc::new(make_requests(requests, body_bytes)?);
        let url = format!("http://{addr}/hooks/bench");
        let mut r = run(&url, signed_requests(&url, signed)?, closed(connections)).await;
        report(label, &mut r);
        server.abort();
        store.close().await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
