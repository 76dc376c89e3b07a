//! Off the request path: fan events out to plugins, run them, deliver.
//!
//! - The fan-out task turns each stored event into one job per subscribed
//!   plugin (job id `{event id}.{plugin}`, so redoing a fan-out after a crash
//!   queues nothing twice).
//! - Job workers lease jobs, call the plugin, and ack the job together with
//!   the deliveries it asked for (one transaction).
//! - Delivery workers send those requests ([`delivery`]), each authorized
//!   against its plugin's grants first ([`delivery::guard`]), paced by its
//!   destination's [`policy`].
//!
//! Replay ([`replay`]), retention ([`retention`]) and the counters behind
//! `/metrics` ([`metrics`]) live here too; the daemon owns the listeners.
#![deny(missing_docs)]

pub mod delivery;
pub mod entities;
pub mod metrics;
pub mod policy;
pub mod replay;
pub mod retention;
pub mod schedules;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldhook_core::decision::{Decision, Outbound};
use fieldhook_core::event::{EventRecord, event_time_ms};
use fieldhook_core::task::{DeliveryPayload, JobPayload};
use fieldhook_core::time::now_ms;
use fieldhook_policy::manifest::MAX_TIMEOUT_MS;
use fieldhook_runtime::directory::PluginSet;
use fieldhook_runtime::{Run, Runtime};
use fieldhook_store::EventStore;
use fieldhook_store::queue::{Coalesced, Lease, NewTask, Settlement, TaskEnd, TaskLog, Topic};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// Attempts per job before it is dead-lettered.
pub const MAX_JOB_ATTEMPTS: u32 = 3;
/// Most requests one decision may ask for.
pub const MAX_REQUESTS_PER_DECISION: usize = 100;
/// Events fanned out in one step.
const FAN_OUT_BATCH: usize = 512;
/// Most tasks leased in one step (one sync makes them all durable).
const MAX_LEASE_BATCH: usize = 256;
/// Most outcomes recorded in one step.
const MAX_SETTLE_BATCH: usize = 1024;

/// Worker counts for the two queues: the `[workers]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workers {
    /// Concurrent plugin runs.
    pub jobs: usize,
    /// Concurrent outbound deliveries.
    pub deliveries: usize,
}

impl Default for Workers {
    /// Plugin calls are short and mostly CPU; deliveries mostly wait on the
    /// network, so many run at once. Leasing and settling in batches keeps
    /// either count cheap.
    fn default() -> Self {
        Self {
            jobs: 64,
            deliveries: 256,
        }
    }
}

/// Everything the workers share.
pub struct Pipeline {
    /// Event store.
    pub store: EventStore,
    /// Work queue.
    pub queue: Arc<dyn TaskLog>,
    /// Loaded plugins.
    pub plugins: Arc<PluginSet>,
    /// Plugin runtime.
    pub runtime: Arc<Runtime>,
    /// Outbound delivery client.
    pub delivery: delivery::Deliverer,
    /// Per-destination policies and live limits.
    pub destinations: policy::Destinations,
    /// Per-entity debounce and ordering.
    pub entity_rules: Vec<entities::EntityRule>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// How each plugin's failed jobs are retried.
    pub job_policies: policy::JobPolicies,
    /// Woken when an event is stored.
    pub inbox: Notify,
    /// Woken when jobs are queued.
    pub jobs: Notify,
    /// Woken when deliveries are queued.
    pub deliveries: Notify,
    /// Plugins' schedules: the sources they emit into, the slots waiting.
    pub schedules: schedules::Schedules,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// How one attempt ended.
enum End {
    Done(String, Vec<NewTask>),
    /// Retry after this delay, ms.
    Retry(String, u64),
    /// Not attempted: give it back for later without spending an attempt.
    Defer(u64),
    Dead(String),
}

/// Failures inside the pipeline's own bookkeeping: the store or the queue
/// could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] fieldhook_store::StoreError),
    /// The task log failed.
    #[error(transparent)]
    Queue(#[from] fieldhook_store::queue::QueueError),
}

impl Pipeline {
    /// Starts the fan-out task and the workers; they stop when `shutdown`
    /// turns true, each after finishing the task it holds.
    pub fn spawn(
        self: &Arc<Self>,
        jobs: usize,
        deliveries: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let mut handles = Vec::new();
        let p = self.clone();
        let s = shutdown.clone();
        handles.push(tokio::spawn(async move { p.fan_out_loop(s).await }));
        let p = self.clone();
        let s = shutdown.clone();
        handles.push(tokio::spawn(async move { p.checkpoint_loop(s).await }));
        let p = self.clone();
        let s = shutdown.clone();
        handles.push(tokio::spawn(p.topic_loop(Topic::Jobs, jobs.max(1), s)));
        let p = self.clone();
        let s = shutdown.clone();
        handles.push(tokio::spawn(async move { p.schedule_loop(s).await }));
        let p = self.clone();
        let s = shutdown.clone();
        // Scheduled runs share the job workers' count: they are plugin
        // calls too, and rare.
        handles.push(tokio::spawn(p.topic_loop(Topic::Schedules, jobs.max(1), s)));
        let p = self.clone();
        handles.push(tokio::spawn(p.topic_loop(
            Topic::Deliveries,
            deliveries.max(1),
            shutdown,
        )));
        handles
    }

    /// Lets the task log bound its start-up now and then.
    async fn checkpoint_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.queue.checkpoint().await {
                tracing::error!(error = %e, "task log checkpoint failed; retrying");
            }
        }
    }

    async fn fan_out_loop(&self, mut shutdown: watch::Receiver<bool>) {
        // A store that cannot write fails every retry alike: say so when
        // it starts and then once a minute, not every second.
        let mut failing: Option<(std::time::Instant, u64)> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = self.inbox.notified();
            match self.fan_out() {
                Ok(n) => {
                    if let Some((_, retries)) = failing.take() {
                        tracing::info!(retries, "fan-out works again");
                    }
                    if n > 0 {
                        continue;
                    }
                }
                Err(e) => match &mut failing {
                    Some((logged, retries)) => {
                        *retries = retries.saturating_add(1);
                        if logged.elapsed() >= Duration::from_secs(60) {
                            *logged = std::time::Instant::now();
                            tracing::error!(error = %e, retries = *retries, "fan-out still failing; retrying every second");
                        }
                    }
                    None => {
                        failing = Some((std::time::Instant::now(), 0));
                        tracing::error!(error = %e, "fan-out failed; retrying every second");
                    }
                },
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Queues jobs for waiting events; returns how many events it handled.
    pub fn fan_out(&self) -> Result<usize, PipelineError> {
        let state = self.queue.fan_out_state();
        // Replays first, then what was stored since the cursor.
        let replays: Vec<String> = state.replays.into_iter().take(FAN_OUT_BATCH).collect();
        let new = self
            .store
            .events_after(&state.cursor, FAN_OUT_BATCH.saturating_sub(replays.len()))?;
        if replays.is_empty() && new.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut plain = Vec::new();
        for id in replays.iter().chain(&new) {
            self.fan_out_one(id, now, &mut plain)?;
        }
        // The jobs and the cursor in one step: a crash redoes the whole
        // fan-out or none of it, and publishing is idempotent (job ids are
        // `{event}.{plugin}`).
        self.queue
            .fanned_out(&plain, new.last().map(String::as_str), &replays, now)?;
        self.jobs.notify_one();
        Ok(replays.len() + new.len())
    }

    /// The jobs of one event: plain ones are added to `plain`, debounced
    /// ones coalesced at once.
    fn fan_out_one(
        &self,
        id: &str,
        now: u64,
        plain: &mut Vec<NewTask>,
    ) -> Result<(), PipelineError> {
        let Some(event) = self.store.event_head(id)? else {
            return Ok(());
        };
        let plugins = self.plugins.subscribers(&event.source, &event.kind);
        if plugins.is_empty() {
            tracing::debug!(event = %id, source = %event.source, kind = %event.kind, "no plugin subscribes to this event");
        }
        for plugin in plugins {
            let payload = encode(&JobPayload {
                event_id: id.to_owned(),
                plugin: plugin.clone(),
                coalesced: 1,
                events: vec![id.to_owned()],
            });
            let mut task = NewTask::new(Topic::Jobs, format!("{id}.{plugin}"), payload);
            let rule = entities::rule_for(&self.entity_rules, &event.source, &plugin);
            let key = event
                .entity
                .as_ref()
                .map(|e| entities::entity_key(&plugin, &event.source, &e.kind, &e.id));
            let (Some(rule), Some(key)) = (rule, key) else {
                plain.push(task);
                continue;
            };
            if rule.ordered {
                task.order_key = Some(key.clone());
            }
            if rule.debounce_ms == 0 {
                plain.push(task);
                continue;
            }
            let latest = id.to_owned();
            let merged = self
                .queue
                .coalesce(&task, &key, rule.debounce_ms, now, &|old| {
                    merge_into(old, &latest)
                })?;
            if let Coalesced::Merged(into) = merged {
                self.metrics.coalesced();
                tracing::debug!(event = %id, job = %into, "coalesced into a waiting job");
            }
        }
        Ok(())
    }

    /// Runs a topic's work: leases batches as slots free up, runs each task
    /// on its own, and hands the outcomes to a settler that records all the
    /// ready ones in one step. Stops when `shutdown` turns true, after the
    /// tasks in hand finish.
    async fn topic_loop(
        self: Arc<Self>,
        topic: Topic,
        slots: usize,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let (wake, lease_ms) = match topic {
            Topic::Jobs => (&self.jobs, MAX_TIMEOUT_MS + 30_000),
            Topic::Deliveries => (&self.deliveries, self.delivery.lease_ms()),
            // Slots are due at times, found by `next_due`; published ones wake it.
            Topic::Schedules => (&self.schedules.wake, MAX_TIMEOUT_MS + 30_000),
        };
        let (outcomes, inbox) = mpsc::unbounded_channel();
        let settler = tokio::spawn(self.clone().settle_loop(topic, inbox));
        let free = Arc::new(Semaphore::new(slots));
        loop {
            if *shutdown.borrow() {
                break;
            }
            let available = free.available_permits();
            if available == 0 {
                tokio::select! {
                    permit = free.clone().acquire_owned() => drop(permit),
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let notified = wake.notified();
            let max = available.min(MAX_LEASE_BATCH);
            let leased = match self.queue.lease(topic, now_ms(), lease_ms, max) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(topic = topic.name(), error = %e, "cannot lease work");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            if leased.is_empty() {
                let wait = match self.queue.next_due(topic) {
                    Ok(Some(due)) => due.saturating_sub(now_ms()).clamp(1, 1_000),
                    _ => 1_000,
                };
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let Ok(mut permits) = free
                .clone()
                .try_acquire_many_owned(u32::try_from(leased.len()).unwrap_or(u32::MAX))
            else {
                // Cannot happen: only this loop takes permits, and it saw
                // enough. The tasks' leases expire and they run again.
                continue;
            };
            // The next batch is leased while this one waits for its sync.
            let p = self.clone();
            let outcomes = outcomes.clone();
            tokio::spawn(async move {
                let leases = match leased.durable().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(topic = topic.name(), error = %e, "leases could not be made durable; they run again when they expire");
                        return;
                    }
                };
                for lease in leases {
                    let Some(permit) = permits.split(1) else {
                        break;
                    };
                    let p = p.clone();
                    let outcomes = outcomes.clone();
                    tokio::spawn(async move {
                        let end = match topic {
                            Topic::Jobs => p.run_job(&lease).await,
                            Topic::Deliveries => p.run_delivery(&lease).await,
                            Topic::Schedules => p.run_slot(&lease).await,
                        };
                        // The settler outlives every task (it ends when the
                        // last sender is dropped), so this cannot fail.
                        let _ = outcomes.send((lease, end));
                        drop(permit);
                    });
                }
            });
        }
        // Let the tasks in hand finish, then the settler record them.
        let _ = free
            .acquire_many(u32::try_from(slots).unwrap_or(u32::MAX))
            .await;
        drop(outcomes);
        let _ = settler.await;
    }

    /// Records outcomes as they come, every one that is ready in one step.
    async fn settle_loop(
        self: Arc<Self>,
        topic: Topic,
        mut inbox: mpsc::UnboundedReceiver<(Lease, End)>,
    ) {
        while let Some(first) = inbox.recv().await {
            let mut ready = vec![first];
            while ready.len() < MAX_SETTLE_BATCH
                && let Ok(more) = inbox.try_recv()
            {
                ready.push(more);
            }
            let now = now_ms();
            let mut queued = false;
            let settlements = ready
                .into_iter()
                .map(|(lease, end)| {
                    let end = self.record(topic, &lease, end);
                    queued |=
                        matches!(&end, TaskEnd::Done { follow_ups, .. } if !follow_ups.is_empty());
                    Settlement { lease, end }
                })
                .collect();
            if let Err(e) = self.queue.settle(settlements, now) {
                tracing::error!(topic = topic.name(), error = %e, "cannot record outcomes; their tasks run again when their leases expire");
            }
            if queued {
                self.deliveries.notify_one();
            }
        }
    }

    /// Logs and counts one outcome, and says how the task log ends it.
    /// An outcome may quote a plugin (its error, a refused request with the
    /// `[[http]]` block to add): one log line all the same.
    fn record(&self, topic: Topic, lease: &Lease, end: End) -> TaskEnd {
        use fieldhook_core::text::escape_controls as esc;
        match end {
            End::Done(outcome, follow_ups) => {
                tracing::debug!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, outcome = %esc(&outcome), "done");
                self.metrics.attempt(topic, "done");
                TaskEnd::Done {
                    outcome,
                    follow_ups,
                }
            }
            End::Retry(outcome, delay_ms) => {
                tracing::warn!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, outcome = %esc(&outcome), delay_ms, "will retry");
                self.metrics.attempt(topic, "retry");
                TaskEnd::Retry { outcome, delay_ms }
            }
            End::Defer(delay_ms) => {
                self.metrics.attempt(topic, "deferred");
                TaskEnd::Defer { delay_ms }
            }
            End::Dead(reason) => {
                tracing::error!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, reason = %esc(&reason), "dead-lettered");
                self.metrics.attempt(topic, "dead");
                TaskEnd::Dead { reason }
            }
        }
    }

    async fn run_job(&self, lease: &Lease) -> End {
        let Ok(job) = postcard::from_bytes::<JobPayload>(&lease.payload) else {
            return End::Dead("job record is corrupt".into());
        };
        let event = match self.store.event(&job.event_id) {
            Ok(Some(e)) => e,
            Ok(None) => return End::Dead(format!("event {} is no longer stored", job.event_id)),
            Err(e) => return self.retry_job(lease, &job.plugin, format!("cannot read event: {e}")),
        };
        let Some(plugin) = self.plugins.get(&job.plugin) else {
            return self.retry_job(
                lease,
                &job.plugin,
                format!("plugin `{}` is not loaded", job.plugin),
            );
        };
        let event = Arc::new(event);
        let run = Run {
            attempt: lease.attempt,
            coalesced: job.coalesced,
        };
        let report = self.runtime.call(&plugin, &event, run).await;
        self.metrics.plugin_latency.observe(report.elapsed);
        tracing::debug!(plugin = %job.plugin, event = %job.event_id, elapsed_us = report.elapsed.as_micros() as u64, "plugin call");
        let burst = match job.coalesced {
            0 | 1 => String::new(),
            n => format!(" ({n} events coalesced)"),
        };
        match report.result {
            Ok(Decision::Filtered) => {
                End::Done(format!("filtered out by the plugin{burst}"), vec![])
            }
            Ok(Decision::Drop(reason)) => End::Done(format!("dropped: {reason}{burst}"), vec![]),
            Ok(Decision::Deliver(requests)) => match self.deliveries_for(lease, &job, requests) {
                Ok(tasks) => End::Done(format!("queued {} deliveries{burst}", tasks.len()), tasks),
                Err(reason) => End::Dead(reason),
            },
            Err(e) if e.retryable() => self.retry_job(lease, &job.plugin, e.to_string()),
            Err(e) => End::Dead(e.to_string()),
        }
    }

    /// Checks a decision's requests and turns them into delivery tasks.
    fn deliveries_for(
        &self,
        lease: &Lease,
        job: &JobPayload,
        requests: Vec<Outbound>,
    ) -> Result<Vec<NewTask>, String> {
        if requests.len() > MAX_REQUESTS_PER_DECISION {
            return Err(format!(
                "the plugin asked for {} requests; at most {MAX_REQUESTS_PER_DECISION} per event",
                requests.len()
            ));
        }
        requests
            .into_iter()
            .enumerate()
            .map(|(i, request)| {
                delivery::validate(&request).map_err(|e| format!("request {i}: {e}"))?;
                let idempotency_key = request
                    .idempotency_key
                    .clone()
                    .unwrap_or_else(|| format!("{}.{i}", lease.id));
                Ok(NewTask::new(
                    Topic::Deliveries,
                    format!("{}.{i}", lease.id),
                    encode(&DeliveryPayload {
                        event_id: job.event_id.clone(),
                        plugin: job.plugin.clone(),
                        request,
                        idempotency_key,
                    }),
                ))
            })
            .collect()
    }

    async fn run_delivery(&self, lease: &Lease) -> End {
        let Ok(d) = postcard::from_bytes::<DeliveryPayload>(&lease.payload) else {
            return End::Dead("delivery record is corrupt".into());
        };
        let Some(origin) = policy::origin_of(&d.request.url) else {
            return End::Dead(format!(
                "URL `{}` has no scheme or host",
                fieldhook_core::text::escape_controls(&d.request.url)
            ));
        };
        let policy = self.destinations.policy(&origin);
        let age = now_ms().saturating_sub(lease.created_ms);
        if let Some(max) = policy.max_age_ms.filter(|max| age > *max) {
            return End::Dead(format!(
                "gave up after {} attempts: older than the destination's max_age_secs ({} s)",
                lease.attempt - 1,
                max / 1000
            ));
        }
        let permit = match self.destinations.acquire(&origin) {
            Ok(p) => p,
            Err(wait) => {
                tracing::debug!(task = %lease.id, %origin, ?wait, "destination not ready; deferred");
                return End::Defer(wait.ms());
            }
        };
        let started = Instant::now();
        let sent = self.delivery.send(&d, &|s| policy.retries_status(s)).await;
        let took = started.elapsed();
        self.metrics.delivery_latency.observe(took);
        // Each attempt's history entry says how long it took.
        let took_ms = took.as_millis();
        permit.record(matches!(sent, delivery::Sent::Retryable { .. }));
        match sent {
            delivery::Sent::Ok(status) => {
                if let Some(at) = event_time_ms(&d.event_id) {
                    self.metrics
                        .end_to_end_latency
                        .observe(Duration::from_millis(now_ms().saturating_sub(at)));
                }
                End::Done(format!("delivered: HTTP {status} in {took_ms} ms"), vec![])
            }
            delivery::Sent::Retryable {
                reason,
                retry_after_ms,
            } => {
                if lease.attempt >= policy.max_attempts {
                    End::Dead(format!(
                        "gave up after {} attempts: {reason} (after {took_ms} ms)",
                        lease.attempt
                    ))
                } else {
                    let delay =
                        retry_after_ms.unwrap_or_else(|| policy.backoff.delay_ms(lease.attempt));
                    End::Retry(format!("{reason} (after {took_ms} ms)"), delay)
                }
            }
            delivery::Sent::Permanent(reason) => {
                End::Dead(format!("{reason} (after {took_ms} ms)"))
            }
        }
    }

    /// A job task's payload, decoded.
    pub fn job_payload(payload: &[u8]) -> Option<JobPayload> {
        postcard::from_bytes(payload).ok()
    }

    /// A delivery task's payload, decoded.
    pub fn delivery_payload(payload: &[u8]) -> Option<DeliveryPayload> {
        postcard::from_bytes(payload).ok()
    }

    /// The event a job or delivery payload refers to, and its plugin.
    pub fn task_origin(topic: Topic, payload: &[u8]) -> Option<(String, String)> {
        match topic {
            Topic::Jobs => postcard::from_bytes::<JobPayload>(payload)
                .ok()
                .map(|j| (j.event_id, j.plugin)),
            Topic::Deliveries => postcard::from_bytes::<DeliveryPayload>(payload)
                .ok()
                .map(|d| (d.event_id, d.plugin)),
            Topic::Schedules => None,
        }
    }

    /// The origin (`scheme://host:port`) a delivery task is sent to.
    pub fn delivery_origin(payload: &[u8]) -> Option<String> {
        let d = postcard::from_bytes::<DeliveryPayload>(payload).ok()?;
        policy::origin_of(&d.request.url)
    }

    /// Reads a stored event (for the admin API).
    pub fn event(&self, id: &str) -> Result<Option<EventRecord>, PipelineError> {
        Ok(self.store.event(id)?)
    }
}

/// A waiting debounced job takes the latest event of its burst.
fn merge_into(old: &[u8], latest: &str) -> Vec<u8> {
    let Ok(mut job) = postcard::from_bytes::<JobPayload>(old) else {
        return old.to_vec();
    };
    if job.absorb(latest) {
        encode(&job)
    } else {
        old.to_vec()
    }
}

impl Pipeline {
    /// A retryable job failure: retry per the plugin's policy, or give up.
    fn retry_job(&self, lease: &Lease, plugin: &str, reason: String) -> End {
        let policy = self.job_policies.get(plugin);
        if lease.attempt >= policy.max_attempts {
            return End::Dead(format!(
                "gave up after {} attempts: {reason}",
                lease.attempt
            ));
        }
        let age = now_ms().saturating_sub(lease.created_ms);
        if policy.max_age_ms.is_some_and(|max| age > max) {
            return End::Dead(format!(
                "gave up after {} attempts (older than max_age_secs): {reason}",
                lease.attempt
            ));
        }
        End::Retry(reason, policy.backoff.delay_ms(lease.attempt))
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain owned data into a Vec cannot fail.
    postcard::to_stdvec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_keeps_the_latest_event_and_counts_each_event_once() {
        let first = encode(&JobPayload {
            event_id: "evt_1".into(),
            plugin: "p".into(),
            coalesced: 1,
            events: vec!["evt_1".into()],
        });
        let second = merge_into(&first, "evt_2");
        let again = merge_into(&second, "evt_2");
        let job: JobPayload = postcard::from_bytes(&again).unwrap();
        assert_eq!((job.event_id.as_str(), job.coalesced), ("evt_2", 2));
        assert_eq!(job.events, ["evt_1", "evt_2"]);
    }
}
