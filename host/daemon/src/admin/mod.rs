//! The admin API: its own listener, every route but `/healthz` and `/readyz`
//! behind a bearer token.
//!
//! | route                          | what                                        |
//! |--------------------------------|---------------------------------------------|
//! | `GET /healthz`, `GET /readyz`  | liveness; readiness (503 while starting, stopping, or while the store cannot write) |
//! | `GET /metrics`                 | Prometheus text                             |
//! | `GET /stats`                   | queue depth, DLQ size, counters, circuits   |
//! | `GET /events[?source&after&limit]`, `GET /events/{id}` | events, one with its work |
//! | `GET /jobs[?state&after&limit]`, `GET /jobs/{id}`       | jobs                |
//! | `GET /deliveries[...]`, `GET /deliveries/{id}`          | deliveries          |
//! | `GET /dlq[?topic&plugin&source&reason&limit]`           | dead letters        |
//! | `POST /replay`                 | `{"event_id"}`, `{"dlq": {filter}}` or `{"source","from_ms","to_ms"}` |
//! | `GET /plugins`                 | loaded plugins and load failures            |
//! | `POST /reload`                 | read the configuration file again (as SIGHUP); 422 lists its problems |
//! | `POST /store/backup`           | `{"dest": "/abs/dir"}`: an online backup of the store |
//! | `/console/...`                 | the operator console: HTML, its own sign-in ([`console`]) |
//!
//! `fieldhook events|dlq|replay|stats` ([`client`]) talk to it; operators
//! use the [`console`] under `/console`, which reads through the same
//! functions as these routes.

pub mod client;
pub mod console;
pub mod settings;

pub use settings::{AdminSettings, RawAdmin};

use std::path::Path as FsPath;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use fieldhook_core::event::EventRecord;
use fieldhook_pipeline::Pipeline;
use fieldhook_pipeline::replay::{DeadLetter, DlqFilter, ReplayReport};
use fieldhook_runtime::directory::LoadFailure;
use fieldhook_runtime::{InstancePolicy, LoadedPlugin};
use fieldhook_store::queue::{Task, TaskState, Topic};

/// Most items one list answer holds.
pub const MAX_PAGE: usize = 1_000;

/// Most events one filtered read of the event list examines: a filter on
/// the body or the work's status reads every event it passes over.
pub const MAX_SCAN: usize = 5_000;

/// Why an admin read or change failed; the JSON routes and the console
/// each answer it their own way.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request asks for something malformed.
    #[error("{0}")]
    BadRequest(String),
    /// What it names is not stored.
    #[error("{0}")]
    NotFound(String),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] fieldhook_store::StoreError),
    /// The task log failed.
    #[error(transparent)]
    Queue(#[from] fieldhook_store::queue::QueueError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] fieldhook_pipeline::PipelineError),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        error(self.status(), self)
    }
}

/// The admin listener's connections: a few operators and scrapers, each
/// sending its request at once. Its descriptors are kept from webhook
/// connections ([`crate::open_files::reserve`]).
pub const CONNECTION_LIMITS: crate::listener::ConnectionLimits =
    crate::listener::ConnectionLimits {
        max_connections: match std::num::NonZeroUsize::new(64) {
            Some(n) => n,
            None => std::num::NonZeroUsize::MIN,
        },
        header_read_timeout: std::time::Duration::from_secs(10),
    };

/// What the admin API serves from.
pub struct AdminState {
    /// The running pipeline.
    pub pipeline: Arc<Pipeline>,
    /// False while starting or stopping.
    pub ready: Arc<AtomicBool>,
    /// Reloads the configuration file (`POST /reload`).
    pub reloader: Option<Arc<crate::reload::Reloader>>,
    token: String,
}

/// The admin router.
pub fn router(
    settings: &AdminSettings,
    pipeline: Arc<Pipeline>,
    ready: Arc<AtomicBool>,
    reloader: Option<Arc<crate::reload::Reloader>>,
) -> Router {
    let state = Arc::new(AdminState {
        pipeline,
        ready,
        reloader,
        token: settings.token.clone(),
    });
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/events", get(list_events))
        .route("/events/{id}", get(show_event))
        .route("/jobs", get(|s, q| list_tasks(s, Topic::Jobs, q)))
        .route("/jobs/{id}", get(|s, p| show_task(s, Topic::Jobs, p)))
        .route(
            "/deliveries",
            get(|s, q| list_tasks(s, Topic::Deliveries, q)),
        )
        .route(
            "/deliveries/{id}",
            get(|s, p| show_task(s, Topic::Deliveries, p)),
        )
        .route("/dlq", get(dlq))
        .route("/replay", post(replay))
        .route("/store/backup", post(backup))
        .route("/reload", post(reload))
        .route("/plugins", get(plugins))
        .route("/schedules", get(schedules))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(state.clone())
        .merge(console::router(state))
}

async fn authorize(State(s): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    use subtle::ConstantTimeEq;
    if bool::from(given.as_bytes().ct_eq(s.token.as_bytes())) {
        next.run(req).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <[admin] token>)",
        )
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

async fn readyz(State(s): State<Arc<AdminState>>) -> Response {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response();
    }
    let store = s.pipeline.store.write_state();
    if !store.writable {
        let error = store.error.unwrap_or_default();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store cannot write ({error}); webhooks get 503\n"),
        )
            .into_response();
    }
    "ready\n".into_response()
}

async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    let p = &s.pipeline;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        {
            let mut text = p.metrics.render(&p.queue.depth());
            let store = p.store.write_state();
            text.push_str(&format!(
                "# HELP fieldhook_store_writable 1 while the store can write, 0 while writes fail (disk full, I/O errors).\n\
                 # TYPE fieldhook_store_writable gauge\n\
                 fieldhook_store_writable {}\n\
                 # HELP fieldhook_store_write_failures_total Store writes that failed.\n\
                 # TYPE fieldhook_store_write_failures_total counter\n\
                 fieldhook_store_write_failures_total {}\n",
                u8::from(store.writable),
                store.failures_total
            ));
            text
        },
    )
        .into_response()
}

fn writable() -> fieldhook_store::health::WriteState {
    fieldhook_store::health::WriteState {
        writable: true,
        failing_since_ms: None,
        error: None,
        refused: 0,
        failures_total: 0,
    }
}

/// `GET /stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    /// Webhooks answered 2xx since start.
    pub received: u64,
    /// The last hour minute by minute, oldest first (memory only).
    #[serde(default)]
    pub per_minute: Vec<fieldhook_pipeline::metrics::Minute>,
    /// Webhooks refused since start, by status.
    pub rejected: std::collections::BTreeMap<u16, u64>,
    /// `{topic: {state: count}}`.
    pub tasks: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// The configuration generation in force: 1 at start, one more for
    /// every successful reload.
    #[serde(default)]
    pub config_generation: u64,
    /// Whether the store can write, and if not since when and why.
    #[serde(default = "writable")]
    pub store: fieldhook_store::health::WriteState,
    /// Dead-lettered tasks.
    pub dlq: u64,
    /// Destinations seen, with their circuits.
    pub destinations: Vec<Value>,
    /// Group-commit flushes and writes.
    pub flushes: u64,
    /// Writes covered by those flushes.
    pub writes: u64,
}

async fn stats(State(s): State<Arc<AdminState>>) -> Response {
    Json(s.stats()).into_response()
}

/// Finished tasks a recent-failures read examines per topic, newest first.
pub const RECENT_SCAN: usize = 2_000;
/// Failures shown per plugin or destination.
pub const RECENT_FAILURES: usize = 5;

/// One failed attempt, for the console.
#[derive(Debug, Clone)]
pub struct RecentFailure {
    /// The task's id (its event's id first).
    pub task_id: String,
    /// When the attempt ended, Unix ms.
    pub at_ms: u64,
    /// Why it failed.
    pub outcome: String,
}

impl RecentFailure {
    /// The event whose work this was.
    pub fn event_id(&self) -> &str {
        self.task_id.split('.').next().unwrap_or_default()
    }

    /// The status a destination answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        const ANSWERED: &str = "destination answered HTTP ";
        let at = self.outcome.find(ANSWERED)? + ANSWERED.len();
        self.outcome.get(at..at + 3)?.parse().ok()
    }
}

/// What the admin API and the console read. Each is one query, shared so
/// the two show the same thing.
impl AdminState {
    /// Counters, queue depth, circuits.
    pub fn stats(&self) -> Stats {
        let p = &self.pipeline;
        let depth = p.queue.depth();
        let mut tasks =
            std::collections::BTreeMap::<String, std::collections::BTreeMap<String, u64>>::new();
        for (topic, state, n) in &depth.counts {
            tasks
                .entry(topic.name().into())
                .or_default()
                .insert(state.name().into(), *n);
        }
        let commit = p.store.commit_stats();
        Stats {
            received: p.metrics.received(),
            rejected: p.metrics.rejected(),
            per_minute: p.metrics.last_hour(),
            dlq: Topic::ALL
                .iter()
                .map(|t| depth.get(*t, TaskState::Dead))
                .sum(),
            tasks,
            destinations: p
                .destinations
                .status()
                .into_iter()
                .map(|d| serde_json::to_value(d).unwrap_or_default())
                .collect(),
            flushes: commit.flushes,
            writes: commit.writes,
            store: p.store.write_state(),
            config_generation: self.reloader.as_ref().map_or(1, |r| r.generation()),
        }
    }

    /// The newest failed attempts of `topic`'s tasks by `key` (a plugin, a
    /// destination), newest first, [`RECENT_FAILURES`] each; reads the
    /// unfinished tasks and the newest [`RECENT_SCAN`] finished ones.
    pub fn recent_failures(
        &self,
        topic: Topic,
        key: impl Fn(&Task) -> Option<String>,
    ) -> Result<std::collections::BTreeMap<String, Vec<RecentFailure>>, AdminError> {
        let tasks = self
            .pipeline
            .queue
            .newest(topic, RECENT_SCAN, &|t| t.failures().next().is_some())?;
        let mut all: Vec<(String, RecentFailure)> = tasks
            .iter()
            .filter_map(|t| Some((key(t)?, t)))
            .flat_map(|(k, t)| {
                t.failures().map(move |a| {
                    (
                        k.clone(),
                        RecentFailure {
                            task_id: t.id.clone(),
                            at_ms: a.at_ms,
                            outcome: a.outcome.clone(),
                        },
                    )
                })
            })
            .collect();
        all.sort_by_key(|(_, f)| std::cmp::Reverse(f.at_ms));
        let mut out = std::collections::BTreeMap::<String, Vec<RecentFailure>>::new();
        for (k, f) in all {
            let list = out.entry(k).or_default();
            if list.len() < RECENT_FAILURES {
                list.push(f);
            }
        }
        Ok(out)
    }

    /// Recent failed job attempts by plugin.
    pub fn plugin_failures(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<RecentFailure>>, AdminError> {
        self.recent_failures(Topic::Jobs, |t| {
            Pipeline::task_origin(Topic::Jobs, &t.payload).map(|(_, plugin)| plugin)
        })
    }

    /// Recent failed delivery attempts by destination origin.
    pub fn destination_failures(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<RecentFailure>>, AdminError> {
        self.recent_failures(Topic::Deliveries, |t| Pipeline::delivery_origin(&t.payload))
    }

    /// One event and its work: `(topic, tasks)` for jobs, then deliveries.
    pub fn event_with_work(&self, id: &str) -> Result<(EventRecord, Work), AdminError> {
        let event = self.pipeline.store.event(id)?.ok_or_else(|| {
            AdminError::NotFound(format!(
                "no event `{id}` (expired by retention, or never stored)"
            ))
        })?;
        Ok((event, self.work_of(id)?))
    }

    /// An event's jobs and deliveries (their ids start with the event's).
    pub fn work_of(&self, event_id: &str) -> Result<Work, AdminError> {
        let mut work = Vec::new();
        for topic in Topic::ALL {
            work.push((
                topic,
                self.pipeline
                    .queue
                    .with_prefix(topic, &format!("{event_id}."))?,
            ));
        }
        Ok(work)
    }

    /// Events newest first, filtered as `q` says, each with where its work
    /// stands.
    pub fn events_newest_first(
        &self,
        q: &EventQuery,
    ) -> Result<(Vec<(EventRecord, WorkStatus)>, fieldhook_store::Examined), AdminError> {
        let since = q.since_ms.map(fieldhook_core::event::event_id_at);
        let until = q.until_ms.map(fieldhook_core::event::event_id_at);
        let before = match (q.before.clone(), until) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        };
        let needle = q.text.as_deref().map(str::to_ascii_lowercase);
        // Work lookups fail rarely; the first failure is kept and returned.
        let failed = std::cell::RefCell::new(None);
        let keep = |e: &EventRecord| {
            let matches = q.source.as_deref().is_none_or(|s| e.source == s)
                && q.kind.as_deref().is_none_or(|k| e.kind.contains(k))
                && needle.as_deref().is_none_or(|n| {
                    e.body
                        .windows(n.len().max(1))
                        .any(|w| w.eq_ignore_ascii_case(n.as_bytes()))
                });
            let Some(wanted) = q.status else {
                return matches;
            };
            matches
                && match self.work_of(&e.id) {
                    Ok(work) => WorkStatus::of(&work) == wanted,
                    Err(err) => {
                        failed.borrow_mut().get_or_insert(err);
                        false
                    }
                }
        };
        let (events, examined) = self.pipeline.store.events_newest_first(
            before.as_deref(),
            since.as_deref(),
            q.limit.clamp(1, MAX_PAGE),
            q.scan.clamp(1, MAX_SCAN),
            &keep,
        )?;
        if let Some(err) = failed.into_inner() {
            return Err(err);
        }
        let events = events
            .into_iter()
            .map(|e| {
                let status = WorkStatus::of(&self.work_of(&e.id)?);
                Ok((e, status))
            })
            .collect::<Result<_, AdminError>>()?;
        Ok((events, examined))
    }

    /// Dead letters matching `filter`, at most `limit`.
    pub fn dead_letters(
        &self,
        filter: &DlqFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, AdminError> {
        Ok(self.pipeline.dead_letters(filter, limit)?)
    }

    /// Loaded plugins, and the directories that failed to load.
    pub fn plugins(&self) -> (Vec<Arc<LoadedPlugin>>, Vec<LoadFailure>) {
        let loaded = self.pipeline.plugins.snapshot().values().cloned().collect();
        // Read live: a hot-loaded failure shows at once and goes away when
        // its directory is fixed or removed.
        (loaded, self.pipeline.plugins.failures())
    }

    /// Runs a replay and answers once it is durable: a crash after the
    /// answer cannot undo it.
    pub async fn replay(&self, r: &ReplayRequest) -> Result<ReplayReport, AdminError> {
        let p = &self.pipeline;
        let report = match (&r.event_id, &r.dlq, r.from_ms.or(r.to_ms)) {
            (Some(id), None, None) if r.source.is_none() => p.replay_event(id)?,
            (None, Some(d), None) if r.source.is_none() => p.replay_dlq(&d.filter()?)?,
            (None, None, Some(_)) => match (r.from_ms, r.to_ms) {
                (Some(from), Some(to)) if from < to => {
                    p.replay_range(r.source.as_deref(), from, to)?
                }
                _ => {
                    return Err(AdminError::BadRequest(
                        "a range replay needs from_ms < to_ms".into(),
                    ));
                }
            },
            _ => {
                return Err(AdminError::BadRequest(
                    "give exactly one of: {\"event_id\"}, {\"dlq\": {filter}}, or {\"source\", \"from_ms\", \"to_ms\"}".into(),
                ));
            }
        };
        p.queue.sync().await?;
        tracing::info!(?r, ?report, "replay");
        Ok(report)
    }
}

/// An event's work: its jobs, then its deliveries.
pub type Work = Vec<(Topic, Vec<Task>)>;

/// A filter over events, newest first (the console's event list).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this source.
    pub source: Option<String>,
    /// Only kinds containing this.
    pub kind: Option<String>,
    /// Only events whose work stands so.
    pub status: Option<WorkStatus>,
    /// Only bodies containing this (ASCII case ignored).
    pub text: Option<String>,
    /// Received at or after (Unix ms).
    pub since_ms: Option<u64>,
    /// Received before (Unix ms).
    pub until_ms: Option<u64>,
    /// Older than this event id: the cursor of the next page.
    pub before: Option<String>,
    /// Most events in the answer.
    pub limit: usize,
    /// Most events read to find them (at most [`MAX_SCAN`]).
    pub scan: usize,
}

/// Where an event's work stands, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkStatus {
    /// A job or delivery was dead-lettered.
    Dead,
    /// Work is queued or running.
    Pending,
    /// Every job and delivery finished.
    Done,
    /// No plugin subscribed to it.
    NoWork,
}

impl WorkStatus {
    /// Every status, worst first.
    pub const ALL: [WorkStatus; 4] = [
        WorkStatus::Dead,
        WorkStatus::Pending,
        WorkStatus::Done,
        WorkStatus::NoWork,
    ];

    /// Its name in URLs and pages.
    pub fn name(self) -> &'static str {
        match self {
            WorkStatus::Dead => "dead",
            WorkStatus::Pending => "pending",
            WorkStatus::Done => "done",
            WorkStatus::NoWork => "no-work",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The status of an event with this work.
    pub fn of(work: &[(Topic, Vec<Task>)]) -> Self {
        let states = || {
            work.iter()
                .flat_map(|(_, tasks)| tasks.iter().map(|t| t.state))
        };
        if states().any(|s| s == TaskState::Dead) {
            WorkStatus::Dead
        } else if states().any(|s| s != TaskState::Done) {
            WorkStatus::Pending
        } else if states().next().is_some() {
            WorkStatus::Done
        } else {
            WorkStatus::NoWork
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    source: Option<String>,
    state: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

fn limit(q: Option<usize>) -> usize {
    q.unwrap_or(100).clamp(1, MAX_PAGE)
}

/// An event without its body and headers.
fn event_summary(e: &EventRecord) -> Value {
    json!({
        "id": e.id,
        "source": e.source,
        "vendor": e.vendor,
        "kind": e.kind,
        "entity": e.entity,
        "received_at_ms": e.received_at_ms,
        "occurred_at": e.occurred_at,
        "dedupe_key": e.dedupe_key,
        "bytes": e.body.len(),
    })
}

async fn list_events(State(s): State<Arc<AdminState>>, Query(q): Query<ListQuery>) -> Response {
    let keep = |e: &EventRecord| q.source.as_deref().is_none_or(|src| e.source == src);
    match s
        .pipeline
        .store
        .events_page(q.after.as_deref(), limit(q.limit), &keep)
    {
        Ok(list) => Json(json!({ "events": list.iter().map(event_summary).collect::<Vec<_>>() }))
            .into_response(),
        Err(e) => internal(e),
    }
}

fn task_json(topic: Topic, t: &Task) -> Value {
    let origin = Pipeline::task_origin(topic, &t.payload);
    let mut v = json!({
        "topic": topic.name(),
        "id": t.id,
        "state": t.state.name(),
        "attempts": t.attempts,
        "due_ms": t.due_ms,
        "created_ms": t.created_ms,
        "event_id": origin.as_ref().map(|o| &o.0),
        "plugin": origin.as_ref().map(|o| &o.1),
        "order_key": t.order_key,
        "history": t.history.iter().map(|a| json!({"at_ms": a.at_ms, "outcome": a.outcome})).collect::<Vec<_>>(),
    });
    match topic {
        Topic::Jobs => {
            if let Some(j) = Pipeline::job_payload(&t.payload) {
                v["coalesced"] = json!(j.coalesced);
                v["events"] = json!(j.events);
            }
        }
        Topic::Deliveries => {
            if let Some(d) = Pipeline::delivery_payload(&t.payload) {
                v["method"] = json!(d.request.method);
                v["url"] = json!(d.request.url);
                v["idempotency_key"] = json!(d.idempotency_key);
            }
        }
        Topic::Schedules => {}
    }
    v
}

async fn show_event(State(s): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    let (event, work) = match s.event_with_work(&id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let mut v = event_summary(&event);
    v["headers"] = json!(
        event
            .headers
            .iter()
            .map(|(k, val)| (k.clone(), String::from_utf8_lossy(val).into_owned()))
            .collect::<Vec<_>>()
    );
    v["body"] = json!(String::from_utf8_lossy(&event.body));
    for (topic, tasks) in work {
        v[topic.name()] = json!(
            tasks
                .iter()
                .map(|t| task_json(topic, t))
                .collect::<Vec<_>>()
        );
    }
    Json(v).into_response()
}

async fn list_tasks(
    State(s): State<Arc<AdminState>>,
    topic: Topic,
    Query(q): Query<ListQuery>,
) -> Response {
    let state = match q.state.as_deref() {
        None => None,
        Some(name) => match TaskState::ALL.into_iter().find(|st| st.name() == name) {
            Some(st) => Some(st),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown state `{name}`: ready, leased, done or dead"),
                );
            }
        },
    };
    let keep = |t: &Task| state.is_none_or(|st| t.state == st);
    match s
        .pipeline
        .queue
        .list(topic, q.after.as_deref(), limit(q.limit), &keep)
    {
        Ok(list) => Json(
            json!({ topic.name(): list.iter().map(|t| task_json(topic, t)).collect::<Vec<_>>() }),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

async fn show_task(
    State(s): State<Arc<AdminState>>,
    topic: Topic,
    Path(id): Path<String>,
) -> Response {
    match s.pipeline.queue.get(topic, &id) {
        Ok(Some(t)) => Json(task_json(topic, &t)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no {} task `{id}`", topic.name()),
        ),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DlqQuery {
    topic: Option<String>,
    plugin: Option<String>,
    source: Option<String>,
    reason: Option<String>,
    limit: Option<usize>,
}

fn dlq_filter(
    topic: Option<&str>,
    plugin: Option<String>,
    source: Option<String>,
    reason: Option<String>,
) -> Result<DlqFilter, AdminError> {
    let topic = match topic {
        None => None,
        Some(t) => Some(Topic::parse(t).ok_or_else(|| {
            AdminError::BadRequest(format!("unknown topic `{t}`: jobs or deliveries"))
        })?),
    };
    Ok(DlqFilter {
        topic,
        plugin,
        source,
        reason,
        id_prefix: None,
    })
}

async fn dlq(State(s): State<Arc<AdminState>>, Query(q): Query<DlqQuery>) -> Response {
    let filter = match dlq_filter(q.topic.as_deref(), q.plugin, q.source, q.reason) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match s.dead_letters(&filter, limit(q.limit)) {
        Ok(list) => Json(json!({
            "dead_letters": list.iter().map(|d| {
                let mut v = task_json(d.topic, &d.task);
                v["reason"] = json!(d.reason);
                v
            }).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /replay` body: exactly one of the three forms.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplayRequest {
    /// Replay one event.
    pub event_id: Option<String>,
    /// Replay the dead letters matching this filter (`{}` = all).
    pub dlq: Option<DlqRequest>,
    /// Replay events of this source (with `from_ms`/`to_ms`; any source when absent).
    pub source: Option<String>,
    /// Range start, Unix ms (inclusive).
    pub from_ms: Option<u64>,
    /// Range end, Unix ms (exclusive).
    pub to_ms: Option<u64>,
}

/// The dead-letter filter of a replay request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DlqRequest {
    /// `jobs` or `deliveries`.
    pub topic: Option<String>,
    /// Plugin name.
    pub plugin: Option<String>,
    /// Source name.
    pub source: Option<String>,
    /// Text in the reason.
    pub reason: Option<String>,
    /// Only this event's work.
    pub event_id: Option<String>,
}

impl DlqRequest {
    /// The pipeline's filter for this request.
    pub fn filter(&self) -> Result<DlqFilter, AdminError> {
        let mut filter = dlq_filter(
            self.topic.as_deref(),
            self.plugin.clone(),
            self.source.clone(),
            self.reason.clone(),
        )?;
        filter.id_prefix = self.event_id.as_ref().map(|e| format!("{e}."));
        Ok(filter)
    }
}

async fn reload(State(s): State<Arc<AdminState>>) -> Response {
    let Some(reloader) = &s.reloader else {
        return error(
            StatusCode::CONFLICT,
            "this daemon was not started from a configuration file",
        );
    };
    match reloader.reload().await {
        Ok(done) => Json(done).into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": e.to_string(),
                "generation": e.generation,
                "problems": e.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
    }
}

/// `POST /store/backup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// An absolute path on the daemon's machine: a new or empty directory.
    dest: std::path::PathBuf,
}

async fn backup(State(s): State<Arc<AdminState>>, Json(r): Json<BackupRequest>) -> Response {
    use fieldhook_store::backup::BackupError;
    match s.pipeline.store.backup(&r.dest).await {
        Ok(report) => {
            tracing::info!(dest = %report.dest.display(), entries = report.entries, took_ms = report.took_ms, "store backed up");
            Json(report).into_response()
        }
        Err(e @ (BackupError::NotEmpty(_) | BackupError::Relative(_))) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "store backup failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

async fn replay(State(s): State<Arc<AdminState>>, Json(r): Json<ReplayRequest>) -> Response {
    match s.replay(&r).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every plugin serving and every plugin directory failing, read live from
/// the plugin set: a hot-loaded failure shows at once and goes away when
/// its directory is fixed or removed.
async fn plugins(State(s): State<Arc<AdminState>>) -> Response {
    let failures = s.pipeline.plugins.failures();
    let loaded: Vec<Value> = s
        .pipeline
        .plugins
        .snapshot()
        .values()
        .map(|p| {
            let dir = p.manifest.component.parent().map(FsPath::to_path_buf);
            // A failing new version of a serving plugin is shown with it.
            let failing = failures
                .iter()
                .find(|f| f.serving.as_deref() == Some(p.manifest.name.as_str()))
                .map(|f| f.reason.clone());
            let instances = match p.instances {
                InstancePolicy::Fresh => json!({ "mode": "fresh" }),
                InstancePolicy::Reuse(r) => json!({
                    "mode": "reuse",
                    "warm": p.warm_instances(),
                    "recycle_after_calls": r.after_calls,
                    "recycle_memory_bytes": r.memory_bytes,
                }),
            };
            json!({
                "name": p.manifest.name,
                "version": p.manifest.version,
                "contract": p.wit_version.to_string(),
                "dir": dir.map(|d| d.display().to_string()),
                "component_bytes": p.component_bytes,
                "instances": instances,
                "state": if failing.is_some() { "loaded, new version failing" } else { "loaded" },
                "failing": failing,
            })
        })
        .collect();
    let failures: Vec<Value> = failures
        .iter()
        .map(|f| {
            json!({
                "dir": f.dir.display().to_string(),
                "reason": f.reason,
                "serving": f.serving,
            })
        })
        .collect();
    Json(json!({ "loaded": loaded, "failures": failures })).into_response()
}

/// Each loaded plugin's schedules: the waiting slot and the last run.
async fn schedules(State(s): State<Arc<AdminState>>) -> Response {
    match s.pipeline.schedule_status() {
        Ok(list) => Json(json!({ "schedules": list })).into_response(),
        Err(e) => internal(format!("cannot read the schedules: {e}")),
    }
}
