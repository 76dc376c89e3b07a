//! `fieldhook plugin run`: one call of a plugin on a sample or stored event,
//! or one run of a schedule (`--schedule`), reported as text or as one JSON
//! document (`--json`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use fieldhook_capabilities::{Capabilities, Sandbox};
use fieldhook_core::event::EventRecord;
use fieldhook_runtime::emit::EmitFuture;
use fieldhook_runtime::responder::Outcome;
use fieldhook_runtime::{
    CallError, CallReport, Decision, Emitted, EmittedEvent, Emitter, LoadedPlugin, Outbound, Run,
    Runtime,
};
use fieldhook_store::{EventStore, StoreError};
use serde::Serialize;

use super::sample::{CannedResponses, read_event};
use super::{GrantInfo, grant_info, grant_lines, manifest_for, mib, read_component, tool_cache};

/// Where the event comes from.
pub enum EventFrom {
    /// A sample event file (`--event`).
    File(PathBuf),
    /// An event the daemon stored (`--event-id`), in `data_dir/db`.
    Store {
        /// The event id (`evt_...`).
        id: String,
        /// The daemon's data directory.
        data_dir: PathBuf,
    },
}

/// The rest of `plugin run`'s options.
pub struct Options {
    /// The manifest, when not `plugin.toml` beside the component.
    pub manifest: Option<PathBuf>,
    /// Canned responses for the plugin's outbound HTTP.
    pub responses: Option<PathBuf>,
    /// Print JSON instead of the text report.
    pub json: bool,
    /// What to say about the event, over the sample's or a raw body's.
    pub envelope: Envelope,
}

/// `--vendor`, `--source`, `--kind`: where the event came from, for raw
/// bodies that do not say (and to try a sample as another source).
#[derive(Default)]
pub struct Envelope {
    /// One of the daemon's vendor names.
    pub vendor: Option<String>,
    /// A source name.
    pub source: Option<String>,
    /// The event kind.
    pub kind: Option<String>,
}

impl Envelope {
    fn apply(&self, event: &mut EventRecord) -> anyhow::Result<()> {
        if let Some(vendor) = &self.vendor {
            if !fieldhook_vendors::NAMES.contains(&vendor.as_str()) {
                bail!(
                    "--vendor `{vendor}` is not a vendor fieldhook knows; use one of: {}",
                    fieldhook_vendors::NAMES.join(", ")
                );
            }
            event.vendor = vendor.clone();
        }
        if let Some(source) = &self.source {
            event.source = source.clone();
        }
        if let Some(kind) = &self.kind {
            event.kind = kind.clone();
        }
        Ok(())
    }
}

/// Why a stored event cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredEventError {
    /// `--event-id` without a way to find the store.
    #[error("--event-id needs the daemon's store: give --data-dir DIR or --config FILE")]
    NoStore,
    /// The configuration could not be read.
    #[error("cannot read the configuration: {0}")]
    Config(#[from] fieldhook::config::ConfigError),
    /// No store in the data directory.
    #[error("no event store in {0} (expected a `db` directory: is this the daemon's data_dir?)")]
    Missing(PathBuf),
    /// Another process (the daemon) holds the store's lock.
    #[error(
        "the event store in {0} is locked by another process, most likely the running daemon: \
         stop it first (or run on a copy of the data directory)"
    )]
    Locked(PathBuf),
    /// sled failed otherwise.
    #[error("cannot open the event store in {path}: {source}")]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// What failed.
        source: StoreError,
    },
    /// The store has no such event.
    #[error("no event `{id}` in {path} (list them with `fieldhook events`)")]
    NotFound {
        /// The id asked for.
        id: String,
        /// The store's directory.
        path: PathBuf,
    },
    /// The event is there but cannot be read.
    #[error("cannot read event `{id}`: {source}")]
    Read {
        /// The id asked for.
        id: String,
        /// What failed.
        source: StoreError,
    },
}

/// The data directory from `--data-dir`, or the `data_dir` of `--config`.
pub fn data_dir(
    data_dir: Option<PathBuf>,
    config: Option<&Path>,
) -> Result<PathBuf, StoredEventError> {
    match (data_dir, config) {
        (Some(dir), _) => Ok(dir),
        (None, Some(config)) => Ok(fieldhook::config::Config::load(config)?.data_dir),
        (None, None) => Err(StoredEventError::NoStore),
    }
}

/// Reads one stored event from `data_dir/db`, then closes the store.
pub async fn stored_event(id: &str, data_dir: &Path) -> Result<EventRecord, StoredEventError> {
    let path = data_dir.join("db");
    if !path.join("conf").is_file() {
        return Err(StoredEventError::Missing(data_dir.to_owned()));
    }
    let store = EventStore::open(&path).map_err(|source| match &source {
        e if e.is_locked() => StoredEventError::Locked(path.clone()),
        _ => StoredEventError::Open {
            path: path.clone(),
            source,
        },
    })?;
    let found = store.event(id);
    let _ = store.close().await;
    match found {
        Ok(Some(event)) => Ok(event),
        Ok(None) => Err(StoredEventError::NotFound {
            id: id.to_owned(),
            path,
        }),
        Err(source) => Err(StoredEventError::Read {
            id: id.to_owned(),
            source,
        }),
    }
}

/// Everything one run shows; printed as text or serialized with `--json`.
#[derive(Serialize)]
struct Report {
    plugin: PluginInfo,
    /// The event `handle` ran on; `None` for a schedule's run.
    event: Option<EventInfo>,
    /// The schedule run (`--schedule`), with what it emitted.
    schedule: Option<ScheduleInfo>,
    /// `None`: requests went through the daemon's policy (see the log).
    outbound: Option<Vec<OutboundSeen>>,
    logs: Vec<LogInfo>,
    /// Lines logged past the call's limits, not shown.
    logs_dropped: LogsDropped,
    usage: Usage,
    /// Set when the plugin decided; `error` is set otherwise.
    decision: Option<DecisionInfo>,
    error: Option<ErrorInfo>,
}

#[derive(Serialize)]
struct PluginInfo {
    name: String,
    version: String,
    wit: String,
    component_bytes: usize,
    compiled_code: String,
}

#[derive(Serialize)]
struct EventInfo {
    id: String,
    /// `file` or `store`.
    from: &'static str,
    source: String,
    vendor: String,
    kind: String,
    entity: Option<serde_json::Value>,
    attempt: u32,
    body_bytes: usize,
    /// Whether the manifest subscribes to it (the daemon would send it).
    subscribed: bool,
}

#[derive(Serialize)]
struct ScheduleInfo {
    name: String,
    /// The source the daemon would store emitted events on.
    source: Option<String>,
    /// Every event emitted, in order; recorded, not stored.
    emitted: Vec<EmittedInfo>,
}

#[derive(Serialize)]
struct EmittedInfo {
    kind: String,
    dedupe_key: String,
    entity: Option<serde_json::Value>,
    occurred_at: Option<String>,
    /// The body as text (lossy UTF-8).
    body: String,
    /// The body parsed, when it is JSON.
    json: Option<serde_json::Value>,
    /// `stored`, or `duplicate` for a key emitted earlier in this run (what
    /// the plugin was told).
    outcome: &'static str,
}

/// Records emitted events instead of storing them; a key seen before in
/// the run is a duplicate, as the store would say.
#[derive(Default)]
struct RecordingEmitter {
    events: std::sync::Mutex<Vec<(EmittedEvent, Emitted)>>,
}

impl Emitter for RecordingEmitter {
    fn emit(&self, _plugin: &str, _schedule: &str, event: EmittedEvent) -> EmitFuture {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = if events.iter().any(|(e, _)| e.dedupe_key == event.dedupe_key) {
            Emitted::Duplicate
        } else {
            Emitted::Stored
        };
        events.push((event, outcome));
        Box::pin(async move { Ok(outcome) })
    }
}

#[derive(Serialize)]
struct OutboundSeen {
    method: String,
    url: String,
    /// `canned` or `denied`.
    outcome: &'static str,
    status: Option<u16>,
    rule: Option<String>,
    /// Whether the manifest's `[[http]]` grants allow it.
    grant: GrantInfo,
}

#[derive(Serialize)]
struct LogInfo {
    level: &'static str,
    message: String,
}

#[derive(Serialize)]
struct LogsDropped {
    lines: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Usage {
    elapsed_ms: f64,
    timeout_ms: u64,
    cpu_ms: f64,
    cpu_limit_ms: u64,
    peak_memory_bytes: usize,
    memory_limit_mb: u32,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum DecisionInfo {
    Filtered,
    Drop { reason: String },
    Deliver { requests: Vec<RequestInfo> },
}

#[derive(Serialize)]
struct RequestInfo {
    method: String,
    url: String,
    idempotency_key: Option<String>,
    headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    body: String,
    /// The body parsed, when it is JSON.
    json: Option<serde_json::Value>,
    /// Whether the manifest's `[[http]]` grants allow the delivery.
    grant: GrantInfo,
}

#[derive(Serialize)]
struct ErrorInfo {
    /// `plugin`, `trap`, `timeout` or `cpu-limit`.
    kind: &'static str,
    message: String,
    retryable: bool,
}

/// Runs the plugin once and reports; fails (after reporting) when the
/// plugin failed.
pub async fn run(component: &Path, from: &EventFrom, options: &Options) -> anyhow::Result<()> {
    let manifest = manifest_for(component, options.manifest.as_deref())?;
    let bytes = read_component(component)?;
    let (mut event, attempt, from_name) = match from {
        EventFrom::File(path) => {
            let (event, attempt) = read_event(path)?;
            (event, attempt, "file")
        }
        EventFrom::Store { id, data_dir } => (stored_event(id, data_dir).await?, 1, "store"),
    };
    options.envelope.apply(&mut event)?;
    let grants = manifest.http.clone();
    let canned = options
        .responses
        .as_deref()
        .map(|path| CannedResponses::load(path, grants))
        .transpose()?
        .map(Arc::new);
    let caps = Arc::new(Capabilities::offline(Sandbox::default()));
    let runtime = match &canned {
        Some(c) => Runtime::with_responder(tool_cache(), caps, c.clone())?,
        None => Runtime::new(tool_cache(), caps)?,
    };
    let plugin = runtime.load_bytes(manifest, &bytes)?;
    let event = Arc::new(event);
    let run = Run {
        attempt,
        coalesced: 1,
    };
    let report = runtime.call(&plugin, &event, run).await;
    let outbound = outbound_seen(&plugin, canned.as_deref());
    let mut report = build_report(&plugin, outbound, report);
    report.event = Some(event_info(&plugin, &event, attempt, from_name));
    finish(&report, options.json)
}

/// Runs the manifest's schedule `name` once, recording what it emits.
pub async fn run_scheduled(component: &Path, name: &str, options: &Options) -> anyhow::Result<()> {
    let manifest = manifest_for(component, options.manifest.as_deref())?;
    let Some(schedule) = manifest.schedules.iter().find(|s| s.name == name).cloned() else {
        let names: Vec<&str> = manifest.schedules.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "the manifest has no schedule `{name}`; its [[schedules]]: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let bytes = read_component(component)?;
    let canned = options
        .responses
        .as_deref()
        .map(|path| CannedResponses::load(path, manifest.http.clone()))
        .transpose()?
        .map(Arc::new);
    let scratch = ScratchKv::open()?;
    let caps = Arc::new(scratch.capabilities());
    let runtime = match &canned {
        Some(c) => Runtime::with_responder(tool_cache(), caps, c.clone())?,
        None => Runtime::new(tool_cache(), caps)?,
    };
    let plugin = runtime.load_bytes(manifest, &bytes)?;
    let recorder = Arc::new(RecordingEmitter::default());
    let call = runtime
        .call_scheduled(&plugin, name, recorder.clone())
        .await;
    let outbound = outbound_seen(&plugin, canned.as_deref());
    let mut report = build_report(&plugin, outbound, call);
    drop(runtime);
    scratch.close().await;
    let events = std::mem::take(&mut *recorder.events.lock().unwrap_or_else(|p| p.into_inner()));
    report.schedule = Some(ScheduleInfo {
        name: name.to_owned(),
        source: schedule.source.clone(),
        emitted: events
            .into_iter()
            .map(|(e, outcome)| EmittedInfo {
                kind: e.kind,
                dedupe_key: e.dedupe_key,
                entity: e
                    .entity
                    .map(|e| serde_json::json!({"kind": e.kind, "id": e.id, "url": e.url})),
                occurred_at: e.occurred_at,
                json: serde_json::from_slice(&e.body).ok(),
                body: String::from_utf8_lossy(&e.body).into_owned(),
                outcome: match outcome {
                    Emitted::Stored => "stored",
                    Emitted::Duplicate => "duplicate",
                },
            })
            .collect(),
    });
    finish(&report, options.json)
}

/// An empty key-value store for one run (a watermark a schedule keeps, a
/// cache), in a temporary directory removed afterwards.
struct ScratchKv {
    store: EventStore,
    _dir: tempfile::TempDir,
}

impl ScratchKv {
    fn open() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = EventStore::open(&dir.path().join("db"))
            .map_err(|e| anyhow::anyhow!("cannot open a scratch key-value store: {e}"))?;
        Ok(Self { store, _dir: dir })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(
            Sandbox::default(),
            fieldhook_credentials::Credentials::default(),
            Some(&self.store),
        )
    }

    async fn close(self) {
        let _ = self.store.close().await;
    }
}

/// Prints the report; fails when the plugin failed or a delivery is not
/// granted.
fn finish(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_text(report);
    }
    if let Some(e) = &report.error {
        bail!("the plugin failed: {}", e.message);
    }
    if let Some(DecisionInfo::Deliver { requests }) = &report.decision {
        let refused = requests.iter().filter(|r| !r.grant.allowed).count();
        if refused > 0 {
            bail!(
                "the daemon would refuse {refused} of the {} deliveries: plugin.toml does not \
                 grant them (the rule to add is shown with each)",
                requests.len()
            );
        }
    }
    Ok(())
}

/// The outbound requests the canned responder saw, with their grants.
fn outbound_seen(
    plugin: &LoadedPlugin,
    canned: Option<&CannedResponses>,
) -> Option<Vec<OutboundSeen>> {
    canned.map(|c| {
        let seen = c.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .map(|(request, outcome)| {
                let (outcome, status, rule) = match outcome {
                    Outcome::Canned(status) => ("canned", Some(*status), None),
                    Outcome::Denied(rule) => ("denied", None, Some(rule.clone())),
                };
                OutboundSeen {
                    grant: grant_info(&plugin.manifest, &request.method, &request.url),
                    method: request.method.clone(),
                    url: request.url.clone(),
                    outcome,
                    status,
                    rule,
                }
            })
            .collect()
    })
}

fn event_info(
    plugin: &LoadedPlugin,
    event: &EventRecord,
    attempt: u32,
    from: &'static str,
) -> EventInfo {
    EventInfo {
        id: event.id.clone(),
        from,
        source: event.source.clone(),
        vendor: event.vendor.clone(),
        kind: event.kind.clone(),
        entity: event
            .entity
            .as_ref()
            .map(|e| serde_json::json!({"kind": e.kind, "id": e.id, "url": e.url})),
        attempt,
        body_bytes: event.body.len(),
        subscribed: plugin.manifest.subscribes_to(&event.source, &event.kind),
    }
}

fn build_report(
    plugin: &LoadedPlugin,
    outbound: Option<Vec<OutboundSeen>>,
    call: CallReport,
) -> Report {
    let m = &plugin.manifest;
    let (decision, error) = match call.result {
        Ok(Decision::Filtered) => (Some(DecisionInfo::Filtered), None),
        Ok(Decision::Drop(reason)) => (Some(DecisionInfo::Drop { reason }), None),
        Ok(Decision::Deliver(requests)) => (
            Some(DecisionInfo::Deliver {
                requests: requests.iter().map(|r| request_info(m, r)).collect(),
            }),
            None,
        ),
        Err(e) => (None, Some(error_info(&e))),
    };
    Report {
        plugin: PluginInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            wit: plugin.wit_version.to_string(),
            component_bytes: plugin.component_bytes,
            compiled_code: format!("{:?}", plugin.cache),
        },
        event: None,
        schedule: None,
        outbound,
        logs: call
            .logs
            .iter()
            .map(|l| LogInfo {
                level: l.level,
                message: l.message.clone(),
            })
            .collect(),
        logs_dropped: LogsDropped {
            lines: call.logs_dropped.lines,
            bytes: call.logs_dropped.bytes,
        },
        usage: Usage {
            elapsed_ms: millis(call.elapsed),
            timeout_ms: m.limits.timeout_ms,
            cpu_ms: millis(call.cpu_time),
            cpu_limit_ms: m.limits.cpu_ms,
            peak_memory_bytes: call.peak_memory_bytes,
            memory_limit_mb: m.limits.memory_mb,
        },
        decision,
        error,
    }
}

fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 1e2
}

fn request_info(m: &fieldhook_policy::manifest::Manifest, r: &Outbound) -> RequestInfo {
    RequestInfo {
        grant: grant_info(m, &r.method, &r.url),
        method: r.method.clone(),
        url: r.url.clone(),
        idempotency_key: r.idempotency_key.clone(),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        body: String::from_utf8_lossy(&r.body).into_owned(),
        json: serde_json::from_slice(&r.body).ok(),
    }
}

fn error_info(e: &CallError) -> ErrorInfo {
    let kind = match e {
        CallError::Plugin { .. } => "plugin",
        CallError::Trap(_) => "trap",
        CallError::Timeout(_) => "timeout",
        CallError::CpuLimit(_) => "cpu-limit",
        CallError::HostMemory(_) => "host-memory",
    };
    ErrorInfo {
        kind,
        message: e.to_string(),
        retryable: e.retryable(),
    }
}

fn print_text(r: &Report) {
    let p = &r.plugin;
    println!(
        "plugin   {} {} ({}, {}, compiled code: {})",
        p.name,
        p.version,
        p.wit,
        mib(p.component_bytes),
        p.compiled_code
    );
    if let Some(s) = &r.schedule {
        println!(
            "schedule {} (emits into source {})",
            s.name,
            s.source
                .as_deref()
                .unwrap_or("none: the manifest's entry has no `source`")
        );
    }
    if let Some(e) = &r.event {
        print_event(e);
    }

    if let Some(s) = &r.schedule {
        println!();
        println!("emitted events (recorded, not stored):");
        if s.emitted.is_empty() {
            println!("  none");
        }
        for (i, e) in s.emitted.iter().enumerate() {
            let entity = e
                .entity
                .as_ref()
                .map(|v| {
                    format!(
                        " {}/{}",
                        v["kind"].as_str().unwrap_or(""),
                        v["id"].as_str().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            println!(
                "  [{i}] {}{entity} key {} -> {}",
                e.kind, e.dedupe_key, e.outcome
            );
            if !e.body.is_empty() {
                println!("      {}", e.body);
            }
        }
    }

    println!();
    println!("outbound HTTP during the call:");
    match &r.outbound {
        Some(seen) => {
            if seen.is_empty() {
                println!("  none");
            }
            for s in seen {
                let fate = match (s.status, &s.rule) {
                    (Some(status), _) => format!("answered {status} (canned)"),
                    (None, Some(rule)) => format!("denied: {rule}"),
                    (None, None) => "denied".to_owned(),
                };
                println!("  {} {} -> {fate}", s.method, s.url);
                print!("{}", grant_lines(&s.grant, "      "));
            }
        }
        None => println!(
            "  through the daemon's outbound policy: each request and the rule that decided it is in the log (stderr)"
        ),
    }

    println!();
    println!("logs:");
    if r.logs.is_empty() {
        println!("  none");
    }
    for line in &r.logs {
        println!("  {:<5} {}", line.level, line.message);
    }
    if r.logs_dropped.lines > 0 {
        println!(
            "  ({} more lines, {} bytes, dropped: past the call's log limits, \
             [sandbox] log_max_lines and log_max_bytes)",
            r.logs_dropped.lines, r.logs_dropped.bytes
        );
    }

    let u = &r.usage;
    println!();
    println!(
        "used     {:.2} ms of {} ms, CPU {:.2} ms of {} ms, memory {} of {} MiB",
        u.elapsed_ms,
        u.timeout_ms,
        u.cpu_ms,
        u.cpu_limit_ms,
        mib(u.peak_memory_bytes),
        u.memory_limit_mb
    );

    println!();
    match (&r.decision, &r.error) {
        (Some(DecisionInfo::Filtered), _) => {
            println!("decision: filtered out (filter returned false)")
        }
        (Some(DecisionInfo::Drop { reason }), _) => println!("decision: drop: {reason}"),
        (Some(DecisionInfo::Deliver { requests }), _) => {
            println!("decision: deliver {} request(s)", requests.len());
            for (i, q) in requests.iter().enumerate() {
                println!("  [{i}] {} {}", q.method, q.url);
                print!("{}", grant_lines(&q.grant, "      "));
                if let Some(key) = &q.idempotency_key {
                    println!("      idempotency-key: {key}");
                }
                for (name, value) in &q.headers {
                    println!("      {name}: {value}");
                }
                if !q.body.is_empty() {
                    println!("      {}", q.body);
                }
            }
        }
        (None, Some(e)) => println!(
            "error: {} ({})",
            e.message,
            if e.retryable {
                "retryable: the daemon would retry the job"
            } else {
                "not retryable: the daemon would dead-letter the job"
            }
        ),
        (None, None) => {}
    }
}

fn print_event(e: &EventInfo) {
    println!(
        "event    {} {}/{} attempt {}, {} body bytes{}{}",
        e.id,
        e.source,
        e.kind,
        e.attempt,
        e.body_bytes,
        if e.from == "store" {
            " (from the store)"
        } else {
            ""
        },
        if e.subscribed {
            ""
        } else {
            " (note: the manifest does not subscribe to it; the daemon would not send it)"
        }
    );
}
