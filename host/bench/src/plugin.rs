//! Plugin benchmarks: one call of a Rust plugin (filter + map of a 1 KiB
//! event) on a fresh pooled instance and on a warm reused one, and the time
//! from a plugin's files landing to its new version serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fieldhook_capabilities::{Capabilities, Sandbox};
use fieldhook_core::event::{EntityRecord, EventRecord};
use fieldhook_policy::manifest::Manifest;
use fieldhook_runtime::directory::{self, PluginSet};
use fieldhook_runtime::{CodeCache, Decision, Run, Runtime};

/// Capabilities for benchmarks that run plugins outside the daemon.
pub(crate) fn offline() -> Arc<Capabilities> {
    Arc::new(Capabilities::offline(Sandbox::default()))
}

/// A Housecall Pro job-completed event of `body_bytes` (at least the
/// record itself), as the store holds it. Shared by the plugin benchmarks.
pub(crate) fn event(body_bytes: usize) -> EventRecord {
    let mut body = String::from(
        r#"{"event":"job.completed","event_occurred_at":"2026-11-20T15:04:05Z","company_id":"233b75f9-4b4f-4a83-b21b-c1ed9e571daa","job":{"id":"job_7f3e","invoice_number":"1042","total_amount":24500,"customer":{"id":"cus_d892","first_name":"Dana","last_name":"Reyes","email":"dana@example.com"},"notes":""#,
    );
    while body.len() < body_bytes.saturating_sub(3) {
        body.push('x');
    }
    body.push_str("\"}}");
    EventRecord {
        id: "evt_01JBENCH0000000000000000000".into(),
        source: "hcp".into(),
        vendor: "housecall-pro".into(),
        kind: "job.completed".into(),
        entity: Some(EntityRecord {
            kind: "job".into(),
            id: "job_7f3e".into(),
            url: None,
        }),
        occurred_at: Some("2026-11-20T15:04:05Z".into()),
        dedupe_key: None,
        parsed: true,
        received_at_ms: 1_763_651_045_000,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.into_bytes(),
    }
}

fn manifest(dir: &Path, instances: &str) -> anyhow::Result<Manifest> {
    let text = format!(
        "name = \"bench\"\nversion = \"1\"\ncomponent = \"plugin.wasm\"\n\
         [[subscriptions]]\nsource = \"hcp\"\n\
         [config]\nendpoint = \"https://books.example.com/api/jobs\"\n\
         [runtime]\ninstances = \"{instances}\"\nrecycle_after_calls = 1000000\n"
    );
    Ok(Manifest::parse(&text, &dir.join("plugin.toml"))?)
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.50), at(0.90), at(0.99))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `fieldhook-bench plugin-call`.
pub async fn call(
    component: PathBuf,
    baseline: Option<PathBuf>,
    iterations: usize,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(&component)
        .with_context(|| format!("cannot read {}", component.display()))?;
    let dir = super::tempfile_dir()?;
    let runtime = Runtime::new(CodeCache::new(&dir.join("compiled")), offline())?;
    let event = std::sync::Arc::new(event(1024));
    println!(
        "plugin {} ({} bytes), event body {} bytes, {iterations} sequential calls each",
        component.display(),
        bytes.len(),
        event.body.len()
    );
    measure(&runtime, &dir, &bytes, &event, iterations, true).await?;
    if let Some(baseline) = baseline {
        let bytes = std::fs::read(&baseline)
            .with_context(|| format!("cannot read {}", baseline.display()))?;
        println!(
            "baseline: {} ({} bytes), a guest that drops every event",
            baseline.display(),
            bytes.len()
        );
        measure(&runtime, &dir, &bytes, &event, iterations, false).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn measure(
    runtime: &Runtime,
    dir: &Path,
    bytes: &[u8],
    event: &std::sync::Arc<EventRecord>,
    iterations: usize,
    expect_one_request: bool,
) -> anyhow::Result<()> {
    for mode in ["fresh", "reuse"] {
        if mode == "fresh" && std::env::var_os("TMP_WARM_ONLY").is_some() {
            continue;
        }
        let plugin = runtime.load_bytes(manifest(dir, mode)?, bytes)?;
        // Warm-up: caches, the first warm instance, lazy init.
        for _ in 0..(iterations / 10).max(10) {
            let r = runtime.call(&plugin, event, Run::FIRST).await;
            match r.result {
                Ok(Decision::Deliver(ref reqs)) if reqs.len() == 1 || !expect_one_request => {}
                Ok(_) if !expect_one_request => {}
                other => bail!("the plugin did not map the event to one request: {other:?}"),
            }
        }
        let mut samples = Vec::with_capacity(iterations);
        let started = Instant::now();
        for _ in 0..iterations {
            let t = Instant::now();
            let r = runtime.call(&plugin, event, Run::FIRST).await;
            samples.push(t.elapsed());
            std::hint::black_box(r);
        }
        let total = started.elapsed();
        let (p50, p90, p99) = percentiles(samples);
        println!(
            "{:<24} p50 {:>8.1} us   p90 {:>8.1} us   p99 {:>8.1} us   {:>9.0} calls/s",
            if mode == "fresh" {
                "fresh pooled instance"
            } else {
                "warm reused instance"
            },
            us(p50),
            us(p90),
            us(p99),
            iterations as f64 / total.as_secs_f64()
        );
    }
    Ok(())
}

/// Appends a custom section, so the component is new to the code cache but
/// otherwise the same.
fn with_custom_section(bytes: &[u8], round: usize) -> Vec<u8> {
    let name = b"fieldhook-bench";
    let payload = round.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(size as u8); // LEB128, < 128
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

/// `fieldhook-bench hot-reload`: writes a new version into a watched
/// plugins directory and waits until the set serves it.
pub async fn hot_reload(component: PathBuf, rounds: usize) -> anyhow::Result<()> {
    let bytes = std::fs::read(&component)
        .with_context(|| format!("cannot read {}", component.display()))?;
    let dir = super::tempfile_dir()?;
    let plugins_dir = dir.join("plugins");
    let plugin_dir = plugins_dir.join("bench");
    std::fs::create_dir_all(&plugin_dir)?;
    let runtime = Arc::new(Runtime::new(
        CodeCache::new(&dir.join("compiled")),
        offline(),
    )?);
    let set = Arc::new(PluginSet::default());
    let write = |version: &str, component: &[u8]| -> anyhow::Result<()> {
        std::fs::write(plugin_dir.join("plugin.wasm"), component)?;
        std::fs::write(
            plugin_dir.join("plugin.toml"),
            format!(
                "name = \"bench\"\nversion = \"{version}\"\n[[subscriptions]]\nsource = \"hcp\"\n"
            ),
        )?;
        Ok(())
    };
    write("0", &bytes)?;
    let _watch = directory::watch(runtime.clone(), plugins_dir.clone(), set.clone())?;
    directory::load_dir(&runtime, &plugins_dir, &set);
    println!(
        "plugin {} ({} bytes), debounce {} ms, {rounds} rounds each",
        component.display(),
        bytes.len(),
        directory::DEBOUNCE.as_millis()
    );
    let mut version = 0;
    for (label, recompile) in [
        ("new manifest, cached code", false),
        ("new component, compiled", true),
    ] {
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            version += 1;
            let v = version.to_string();
            let component = if recompile {
                with_custom_section(&bytes, version)
            } else {
                bytes.clone()
            };
            let landed = Instant::now();
            write(&v, &component)?;
            loop {
                if set.get("bench").is_some_and(|p| p.manifest.version == v) {
                    break;
                }
                if landed.elapsed() > Duration::from_secs(30) {
                    bail!("version {v} not serving after 30 s: {:?}", set.failures());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples.push(landed.elapsed());
        }
        let (p50, p90, p99) = percentiles(samples);
        println!(
            "{label:<28} file lands -> serving   p50 {:>6.0} ms   p90 {:>6.0} ms   p99 {:>6.0} ms",
            p50.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
