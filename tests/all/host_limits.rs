//! What a plugin can make the daemon hold and write, specified by the
//! hostile fixture: the host memory its header maps, requests and responses
//! hold is bounded by its own memory limit, and what one call writes to the
//! daemon's log is bounded, one line per message, a few refusals in full.
//!
//! The plugins run in-process through the library's runtime. The log tests
//! run on one thread with a subscriber formatting like the daemon's, so
//! what they capture is exactly what the call writes to the daemon's log.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use fieldhook_capabilities::{Capabilities, Sandbox};
use fieldhook_core::event::EventRecord;
use fieldhook_runtime::{CallError, CallReport, CodeCache, Decision, LoadedPlugin, Run, Runtime};

use crate::support::*;

fn runtime(sandbox: Sandbox) -> Runtime {
    Runtime::new(
        CodeCache::new(&shared_compiled_cache()),
        Arc::new(Capabilities::offline(sandbox)),
    )
    .unwrap()
}

/// The hostile fixture in `mode`, with more manifest text (limits, rules)
/// and `[config]` values.
fn hostile(runtime: &Runtime, mode: &str, extra: &str, config: &str) -> LoadedPlugin {
    load_guest(
        runtime,
        "hostile",
        &format!(
            "name = \"hoarder\"\nversion = \"0.0.1\"\n{extra}\n[config]\nmode = \"{mode}\"\n{config}\n"
        ),
    )
}

async fn call(runtime: &Runtime, plugin: &LoadedPlugin) -> CallReport {
    let event = EventRecord {
        id: "evt_01LIMITS".into(),
        source: "hcp".into(),
        vendor: "housecall-pro".into(),
        kind: "job.completed".into(),
        entity: None,
        occurred_at: None,
        dedupe_key: None,
        parsed: true,
        received_at_ms: 0,
        headers: vec![],
        body: b"{}".to_vec(),
    };
    runtime.call(plugin, &Arc::new(event), Run::FIRST).await
}

fn dropped(r: &CallReport) -> &str {
    match &r.result {
        Ok(Decision::Drop(reason)) => reason,
        other => panic!("expected a drop, got {other:?}"),
    }
}

// ---------------------------------------------------------------- host memory

#[tokio::test(flavor = "multi_thread")]
async fn header_maps_held_past_the_plugins_memory_limit_stop_the_call_naming_the_budget() {
    let rt = runtime(Sandbox::default());
    // 3,000 maps of 100 kB: 300 MB on the host, from a plugin of 32 MiB.
    let p = hostile(
        &rt,
        "header-maps",
        "[limits]\nmemory_mb = 32\n",
        "count = \"3000\"\nsize = \"102400\"\n",
    );
    let r = call(&rt, &p).await;
    let Err(CallError::HostMemory(reason)) = &r.result else {
        panic!(
            "expected the host memory budget to stop it, got {:?}",
            r.result
        );
    };
    assert!(
        reason.contains("host memory budget exceeded: a header map"),
        "{reason}"
    );
    assert!(reason.contains("33554432 bytes (32 MiB"), "{reason}");
    assert!(reason.contains("raise memory_mb in [limits]"), "{reason}");
    assert!(reason.contains("[sandbox] max_memory_mb"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn header_maps_within_the_budget_are_kept_and_dropped_ones_give_it_back() {
    let rt = runtime(Sandbox::default());
    // 100 maps of 100 kB (10 MB) fit in 32 MiB.
    let p = hostile(
        &rt,
        "header-maps",
        "[limits]\nmemory_mb = 32\n",
        "count = \"100\"\nsize = \"102400\"\n",
    );
    assert_eq!(dropped(&call(&rt, &p).await), "held 100 header maps");
    // 3,000 made one after the other, each dropped before the next: never
    // more than one held.
    let p = hostile(
        &rt,
        "header-maps",
        "[limits]\nmemory_mb = 32\n",
        "count = \"3000\"\nsize = \"102400\"\nhold = \"false\"\n",
    );
    assert_eq!(dropped(&call(&rt, &p).await), "held 0 header maps");
}

/// Answers every POST after `delay`, with the size of the body it got.
async fn slow_destination(delay: Duration) -> (String, Arc<Mutex<Vec<usize>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new()
        .fallback(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body.len());
                tokio::time::sleep(delay).await;
                body.len().to_string()
            }
        })
        .layer(axum::extract::DefaultBodyLimit::disable());
    let (addr, task) = serve_local(app).await;
    std::mem::forget(task);
    (format!("{}/upload", local(addr)), got)
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_in_flight_at_once_stay_within_the_budget_and_the_rest_fail_naming_it() {
    let (url, got) = slow_destination(Duration::from_millis(1500)).await;
    let rt = runtime(Sandbox::default());
    // Eight 10 MiB bodies sent before any answer: 80 MiB on the host, from
    // a plugin of 32 MiB.
    let p = hostile(
        &rt,
        "big-bodies",
        &format!(
            "[limits]\nmemory_mb = 32\ntimeout_ms = 60000\ncpu_ms = 60000\n{}",
            http_grant(&url)
        ),
        &format!("url = \"{url}\"\ncount = \"8\"\nsize = \"10485760\"\n"),
    );
    let r = call(&rt, &p).await;
    let report = dropped(&r);
    let (sent, rest) = report
        .strip_prefix("sent=")
        .and_then(|s| s.split_once(" failed="))
        .unwrap_or_else(|| panic!("{report}"));
    let (sent, failed): (usize, usize) = (
        sent.parse().unwrap(),
        rest.split(':').next().unwrap().parse().unwrap(),
    );
    assert_eq!(sent + failed, 8, "{report}");
    assert!((1..=3).contains(&sent), "{report}");
    // The plugin got an error naming the budget and how to raise it.
    assert!(
        rest.contains("host memory budget exceeded: a request body"),
        "{report}"
    );
    assert!(rest.contains("memory_mb"), "{report}");
    // What was sent went whole.
    let got = got.lock().unwrap().clone();
    assert_eq!(got, vec![10 << 20; sent], "{report}");
}

// ---------------------------------------------------------------- the log

/// What the daemon's log would show: a `fmt` subscriber like the daemon's,
/// with every level of fieldhook's own crates (the libraries' tracing at
/// `info`, as the daemon's default), writing into memory, for the current
/// thread only.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,fieldhook=trace"))
            .with_ansi(false)
            .with_writer(captured.clone())
            .finish();
        (
            captured.clone(),
            tracing::subscriber::set_default(subscriber),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_call_logs_within_its_limits_and_one_line_says_how_much_was_dropped() {
    let rt = runtime(Sandbox::default());
    // 800 lines of 64 kB: 52 MB.
    let p = hostile(&rt, "log-flood", "", "count = \"800\"\nsize = \"65536\"\n");
    let (log, _guard) = Captured::start();
    let r = call(&rt, &p).await;
    assert_eq!(dropped(&r), "logged 800 lines");
    let text = log.text();
    let limit = Sandbox::default().log_max_bytes as usize;
    assert!(
        text.len() < limit + 64 * 1024,
        "{} bytes logged",
        text.len()
    );
    // The report keeps what was logged, and counts the rest.
    let kept: usize = r.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= limit, "{kept}");
    assert_eq!(r.logs_dropped.lines, 800 - r.logs.len() as u64);
    assert_eq!(r.logs_dropped.bytes, r.logs_dropped.lines * 65536);
    let summary = format!(
        "{} log lines ({} bytes) of this call dropped",
        r.logs_dropped.lines, r.logs_dropped.bytes
    );
    assert_eq!(
        text.matches(&summary).count(),
        1,
        "{}",
        &text[text.len() - 600..]
    );
    assert!(text.contains("[sandbox] log_max_lines, log_max_bytes"));
    // A 64 kB line is cut at 4 KiB, saying so.
    assert!(
        r.logs[0].message.ends_with(" more bytes)"),
        "{}",
        r.logs[0].message.len()
    );
}

#[tokio::test]
async fn a_plugins_newline_cannot_start_a_line_that_looks_like_the_daemons_own() {
    let rt = runtime(Sandbox::default());
    let p = hostile(&rt, "log-forge", "", "");
    let (log, _guard) = Captured::start();
    let r = call(&rt, &p).await;
    let text = log.text();
    let forged = "2026-12-01T10:00:00.000000Z  INFO fieldhook::admin: admin token accepted";
    for line in text.lines() {
        assert!(!line.starts_with(forged), "forged line in the log:\n{text}");
    }
    assert!(!text.contains(['\r', '\u{1b}']), "{text:?}");
    // The message is there, escaped, on the plugin's own line.
    assert!(
        text.lines().any(|l| l.contains("plugin=\"hoarder\"")
            && l.contains(&format!("job synced\\n{forged}\\r\\u{{1b}}[2K"))),
        "{text}"
    );
    assert_eq!(
        r.logs[0].message,
        format!("job synced\\n{forged}\\r\\u{{1b}}[2K")
    );
    // The plugin's error message, which becomes the job's outcome, too.
    let Err(CallError::Plugin { message, .. }) = &r.result else {
        panic!("{:?}", r.result);
    };
    assert_eq!(message, &format!("failed\\n{forged}"));
}

#[tokio::test]
async fn a_flood_of_refused_requests_logs_the_first_few_in_full_and_one_summary() {
    let rt = runtime(Sandbox::default());
    let p = hostile(
        &rt,
        "denied-flood",
        "[limits]\ntimeout_ms = 60000\ncpu_ms = 60000\n",
        "url = \"https://not-granted.example/v1/jobs\"\ncount = \"10000\"\n",
    );
    let (log, _guard) = Captured::start();
    let r = call(&rt, &p).await;
    assert_eq!(dropped(&r), "10000 denied");
    let text = log.text();
    let denials: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("GET https://not-granted.example:443/v1/jobs is not granted"))
        .collect();
    assert_eq!(denials.len(), 3, "{text}");
    // Each in full, on one line: the [[http]] block to add, escaped.
    assert!(
        denials[0].contains("[[http]]\\nscheme = \"https\"\\nhost = \"not-granted.example\""),
        "{}",
        denials[0]
    );
    assert_eq!(
        text.matches("9997 more refusals during this call, not logged one by one")
            .count(),
        1,
        "{text}"
    );
    assert!(text.len() < 16 * 1024, "{} bytes logged", text.len());
}
