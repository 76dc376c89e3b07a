//! `fieldhook plugin run`.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use fieldhook::runtime::responder::Outcome;
use fieldhook::runtime::{Decision, Runtime};

use super::sample::{CannedResponses, read_event};
use super::{manifest_for, mib, read_component, tool_cache};

pub async fn run(
    component: &Path,
    event: &Path,
    manifest: Option<&Path>,
    responses: Option<&Path>,
) -> anyhow::Result<()> {
    let manifest = manifest_for(component, manifest)?;
    let bytes = read_component(component)?;
    let (event, attempt) = read_event(event)?;
    let canned = responses
        .map(CannedResponses::load)
        .transpose()?
        .map(Arc::new);
    let runtime = match &canned {
        Some(c) => Runtime::with_responder(tool_cache(), c.clone())?,
        None => Runtime::new(tool_cache())?,
    };
    let plugin = runtime.load_bytes(manifest, &bytes)?;
    let m = plugin.manifest.clone();
    println!(
        "plugin   {} {} ({}, {}, compiled code: {:?})",
        m.name,
        m.version,
        plugin.wit_version,
        mib(plugin.component_bytes),
        plugin.cache
    );
    println!(
        "event    {} {}/{} attempt {attempt}, {} body bytes{}",
        event.id,
        event.source,
        event.kind,
        event.body.len(),
        if m.subscribes_to(&event.source, &event.kind) {
            ""
        } else {
            " (note: the manifest does not subscribe to it; the daemon would not send it)"
        }
    );

    let report = runtime.call(&plugin, &event, attempt).await;

    println!();
    println!("outbound HTTP during the call:");
    match &canned {
        Some(c) => {
            let seen = c.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.is_empty() {
                println!("  none");
            }
            for (request, outcome) in seen.iter() {
                let fate = match outcome {
                    Outcome::Canned(status) => format!("answered {status} (canned)"),
                    Outcome::Denied(rule) => format!("denied: {rule}"),
                };
                println!("  {} {} -> {fate}", request.method, request.url);
            }
        }
        None => println!(
            "  through the daemon's outbound policy: each request and the rule that decided it is in the log (stderr)"
        ),
    }

    println!();
    println!("logs:");
    if report.logs.is_empty() {
        println!("  none");
    }
    for line in &report.logs {
        println!("  {:<5} {}", line.level, line.message);
    }

    println!();
    println!(
        "used     {:.2} ms of {} ms, memory {} of {} MiB",
        report.elapsed.as_secs_f64() * 1e3,
        m.limits.timeout_ms,
        mib(report.peak_memory_bytes),
        m.limits.memory_mb
    );

    println!();
    match report.result {
        Ok(Decision::Filtered) => println!("decision: filtered out (filter returned false)"),
        Ok(Decision::Drop(reason)) => println!("decision: drop: {reason}"),
        Ok(Decision::Deliver(requests)) => {
            println!("decision: deliver {} request(s)", requests.len());
            for (i, r) in requests.iter().enumerate() {
                println!("  [{i}] {} {}", r.method, r.url);
                if let Some(key) = &r.idempotency_key {
                    println!("      idempotency-key: {key}");
                }
                for (name, value) in &r.headers {
                    println!("      {name}: {}", String::from_utf8_lossy(value));
                }
                if !r.body.is_empty() {
                    println!("      {}", String::from_utf8_lossy(&r.body));
                }
            }
        }
        Err(e) => bail!("the plugin failed: {e}"),
    }
    Ok(())
}
