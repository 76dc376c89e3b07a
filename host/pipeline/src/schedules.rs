//! Plugins' schedules: one task per slot in the task log.
//!
//! Each `[[schedules]]` entry of a loaded plugin always has one unfinished
//! slot task (`{plugin}/{schedule}/{slot ms}`) in the `schedules` topic,
//! due at the slot's time. That makes the schedule durable for free:
//! - the next due time is that task, so it survives restarts;
//! - a slot that fell due while the daemon was down is simply overdue at
//!   start, and runs once (or, with `missed = "skip"`, is finished unrun);
//! - a run cut short by a crash holds a journaled lease, so the slot runs
//!   again after the restart, like any interrupted job.
//!
//! Finishing a slot publishes the next one in the same step. A slot that
//! ends dead, a schedule just added, or a plugin just installed gets its
//! next slot from [`Pipeline::plan_slots`], which the scheduler loop calls
//! every second.
//!
//! Events a run emits go through the same ingest as webhooks, on the
//! schedule's `source`: the dedupe index (same source, same key) makes an
//! event a webhook already brought a duplicate, stored and processed once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fieldhook_core::event::{Message, NewEvent};
use fieldhook_core::time::now_ms;
use fieldhook_policy::schedule::{Missed, Schedule};
use fieldhook_runtime::emit::{EmitError, EmitFuture, Emitted, EmittedEvent, Emitter};
use fieldhook_store::Ingested;
use fieldhook_store::queue::{Lease, NewTask, Task, Topic};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{End, Pipeline, PipelineError, encode};

/// A slot task's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotPayload {
    /// Plugin name.
    pub plugin: String,
    /// Schedule name in its manifest.
    pub schedule: String,
    /// The slot's time before jitter, Unix ms.
    pub slot_ms: u64,
}

/// The id of a slot task: ids of one schedule sort by slot time.
pub fn slot_id(plugin: &str, schedule: &str, slot_ms: u64) -> String {
    format!("{plugin}/{schedule}/{slot_ms:020}")
}

/// What the scheduler needs beyond the pipeline: the configured sources
/// emitted events may be stored under, and which slots it knows are
/// waiting.
#[derive(Debug)]
pub struct Schedules {
    /// Source name to vendor name.
    sources: RwLock<BTreeMap<String, String>>,
    /// The dedupe window emitted events are checked within, ms.
    dedupe_window_ms: u64,
    /// When this process started: a slot due before it was missed while
    /// the daemon was down.
    started_ms: u64,
    /// The waiting slot of each (plugin, schedule) seen so far.
    waiting: Mutex<HashMap<(String, String), String>>,
    /// Woken when slots are published.
    pub(crate) wake: tokio::sync::Notify,
}

impl Schedules {
    /// `sources` maps each configured source's name to its vendor.
    pub fn new(sources: BTreeMap<String, String>, dedupe_window_ms: u64) -> Self {
        Self {
            sources: RwLock::new(sources),
            dedupe_window_ms,
            started_ms: now_ms(),
            waiting: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Replaces the sources (a reloaded configuration).
    pub fn set_sources(&self, sources: BTreeMap<String, String>) {
        *self.sources.write().unwrap_or_else(|p| p.into_inner()) = sources;
    }

    fn vendor(&self, source: &str) -> Option<String> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .cloned()
    }
}

impl Default for Schedules {
    fn default() -> Self {
        Self::new(BTreeMap::new(), 0)
    }
}

/// One schedule as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleStatus {
    /// Plugin name.
    pub plugin: String,
    /// Schedule name.
    pub schedule: String,
    /// The waiting slot's due time, Unix ms.
    pub next_due_ms: Option<u64>,
    /// The last finished slot's time, Unix ms.
    pub last_slot_ms: Option<u64>,
    /// When it finished, Unix ms.
    pub last_run_ms: Option<u64>,
    /// `done` or `dead`.
    pub last_state: Option<&'static str>,
    /// What its run did.
    pub last_outcome: Option<String>,
}

impl Pipeline {
    /// Publishes the next slot of every schedule that has none waiting;
    /// returns how many it published.
    pub fn plan_slots(&self, now: u64) -> Result<usize, PipelineError> {
        let mut new = Vec::new();
        let mut waiting = self
            .schedules
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for plugin in self.plugins.snapshot().values() {
            let name = &plugin.manifest.name;
            for s in &plugin.manifest.schedules {
                let key = (name.clone(), s.name.clone());
                if let Some(id) = waiting.get(&key)
                    && self
                        .queue
                        .get(Topic::Schedules, id)?
                        .is_some_and(|t| !t.state.is_finished())
                {
                    continue;
                }
                let tasks = self
                    .queue
                    .with_prefix(Topic::Schedules, &format!("{name}/{}/", s.name))?;
                if let Some(t) = tasks.iter().find(|t| !t.state.is_finished()) {
                    waiting.insert(key, t.id.clone());
                    continue;
                }
                let task = next_slot(name, s, now);
                waiting.insert(key, task.id.clone());
                new.push(task);
            }
        }
        drop(waiting);
        if new.is_empty() {
            return Ok(0);
        }
        let published = self.queue.publish(&new, now)?;
        self.schedules.wake.notify_one();
        Ok(published)
    }

    /// Plans slots every second until `shutdown`.
    pub(crate) async fn schedule_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.plan_slots(now_ms()) {
                tracing::error!(error = %e, "cannot plan schedule slots; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Runs one slot: the plugin's `scheduled`, its events emitted through
    /// the store, its deliveries queued, and the next slot published.
    pub(crate) async fn run_slot(self: &Arc<Self>, lease: &Lease) -> End {
        let Ok(slot) = postcard::from_bytes::<SlotPayload>(&lease.payload) else {
            return End::Dead("schedule slot record is corrupt".into());
        };
        let Some(plugin) = self.plugins.get(&slot.plugin) else {
            return self.retry_job(
                lease,
                &slot.plugin,
                format!("plugin `{}` is not loaded", slot.plugin),
            );
        };
        let Some(schedule) = plugin
            .manifest
            .schedules
            .iter()
            .find(|s| s.name == slot.schedule)
            .cloned()
        else {
            return End::Done(
                "not run: the schedule is no longer in the plugin's manifest".into(),
                vec![],
            );
        };
        let now = now_ms();
        let next = vec![next_slot(&slot.plugin, &schedule, now)];
        let due = schedule.due_ms(&slot.plugin, slot.slot_ms);
        // A first attempt due before this process started fell due while
        // the daemon was down; a later attempt was interrupted and reruns.
        if schedule.missed == Missed::Skip && lease.attempt == 1 && due < self.schedules.started_ms
        {
            return End::Done(
                "skipped: fell due while fieldhook was not running (missed = \"skip\")".into(),
                next,
            );
        }
        let emitter: Arc<dyn Emitter> = Arc::new(StoreEmitter(self.clone()));
        let report = self
            .runtime
            .call_scheduled(&plugin, &slot.schedule, emitter)
            .await;
        self.metrics.plugin_latency.observe(report.elapsed);
        for line in &report.logs {
            tracing::debug!(plugin = %slot.plugin, schedule = %slot.schedule, "{}", line.message);
        }
        use fieldhook_core::decision::Decision;
        let origin = fieldhook_core::task::JobPayload {
            event_id: lease.id.clone(),
            plugin: slot.plugin.clone(),
            coalesced: 1,
            events: vec![],
        };
        match report.result {
            Ok(Decision::Filtered) => End::Done("ran: nothing to do".into(), next),
            Ok(Decision::Drop(reason)) => End::Done(format!("ran: {reason}"), next),
            Ok(Decision::Deliver(requests)) => {
                match self.deliveries_for(lease, &origin, requests) {
                    Ok(mut tasks) => {
                        let outcome = format!("ran: queued {} deliveries", tasks.len());
                        tasks.extend(next);
                        End::Done(outcome, tasks)
                    }
                    Err(reason) => End::Dead(reason),
                }
            }
            Err(e) if e.retryable() => self.retry_job(lease, &slot.plugin, e.to_string()),
            Err(e) => End::Dead(e.to_string()),
        }
    }

    /// Each schedule of the loaded plugins: its waiting slot and its last
    /// finished one.
    pub fn schedule_status(&self) -> Result<Vec<ScheduleStatus>, PipelineError> {
        let mut out = Vec::new();
        for plugin in self.plugins.snapshot().values() {
            let name = &plugin.manifest.name;
            for s in &plugin.manifest.schedules {
                let tasks = self
                    .queue
                    .with_prefix(Topic::Schedules, &format!("{name}/{}/", s.name))?;
                let waiting = tasks.iter().find(|t| !t.state.is_finished());
                let last = tasks.iter().rev().find(|t| t.state.is_finished());
                out.push(ScheduleStatus {
                    plugin: name.clone(),
                    schedule: s.name.clone(),
                    next_due_ms: waiting.map(|t| t.due_ms),
                    last_slot_ms: last.and_then(slot_of),
                    last_run_ms: last.and_then(|t| t.history.last()).map(|a| a.at_ms),
                    last_state: last.map(|t| t.state.name()),
                    last_outcome: last
                        .and_then(|t| t.history.last())
                        .map(|a| a.outcome.clone()),
                });
            }
        }
        Ok(out)
    }
}

fn slot_of(task: &Task) -> Option<u64> {
    task.id.rsplit('/').next()?.parse().ok()
}

/// The first slot after `now`, as a task due at its (jittered) time.
fn next_slot(plugin: &str, s: &Schedule, now: u64) -> NewTask {
    let slot_ms = s.next_slot_after(now);
    NewTask::new(
        Topic::Schedules,
        slot_id(plugin, &s.name, slot_ms),
        encode(&SlotPayload {
            plugin: plugin.to_owned(),
            schedule: s.name.clone(),
            slot_ms,
        }),
    )
    .due_at(s.due_ms(plugin, slot_ms))
}

/// Stores emitted events as the ingress stores webhooks.
struct StoreEmitter(Arc<Pipeline>);

impl Emitter for StoreEmitter {
    fn emit(&self, plugin: &str, schedule: &str, event: EmittedEvent) -> EmitFuture {
        let p = self.0.clone();
        let fatal = |message: String| EmitError {
            message,
            retryable: false,
        };
        let source = p.plugins.get(plugin).and_then(|l| {
            l.manifest
                .schedules
                .iter()
                .find(|s| s.name == schedule)
                .and_then(|s| s.source.clone())
        });
        let target = match source {
            None => Err(fatal(format!(
                "schedule `{schedule}` has no `source`: add source = \"<source name>\" to its \
                 [[schedules]] entry to emit events"
            ))),
            Some(source) => match p.schedules.vendor(&source) {
                Some(vendor) => Ok((source, vendor)),
                None => Err(fatal(format!(
                    "schedule `{schedule}` emits into source `{source}`, which is not configured"
                ))),
            },
        };
        Box::pin(async move {
            let (source, vendor) = target?;
            let new = NewEvent {
                source,
                vendor,
                kind: event.kind,
                entity: event.entity,
                occurred_at: event.occurred_at,
                dedupe_key: Some(event.dedupe_key),
                parsed: true,
                received_at_ms: now_ms(),
                message: Arc::new(Message {
                    headers: event.headers,
                    body: event.body,
                }),
            };
            let out = p
                .store
                .ingest(vec![new], p.schedules.dedupe_window_ms)
                .await
                .map_err(|e| EmitError {
                    message: format!("cannot store the event: {e}"),
                    retryable: true,
                })?;
            match out.first() {
                Some(Ingested::Stored(_)) => {
                    p.inbox.notify_one();
                    Ok(Emitted::Stored)
                }
                Some(Ingested::Duplicate(_)) => Ok(Emitted::Duplicate),
                None => Err(EmitError {
                    message: "the store returned no outcome for the event".into(),
                    retryable: true,
                }),
            }
        })
    }
}
