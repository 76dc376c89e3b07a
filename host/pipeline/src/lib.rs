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
use fieldhook_store::queue::{Coalesced, Lease, NewTask, TaskLog, Topic};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// Attempts per job before it is dead-lettered.
pub const MAX_JOB_ATTEMPTS: u32 = 3;
/// Most requests one decision may ask for.
pub const MAX_REQUESTS_PER_DECISION: usize = 100;

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
    fn default() -> Self {
        Self {
            jobs: 4,
            deliveries: 8,
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
        for _ in 0..jobs.max(1) {
            let p = self.clone();
            let s = shutdown.clone();
            handles.push(tokio::spawn(
                async move { p.worker_loop(Topic::Jobs, s).await },
            ));
        }
        for _ in 0..deliveries.max(1) {
            let p = self.clone();
            let s = shutdown.clone();
            handles.push(tokio::spawn(async move {
                p.worker_loop(Topic::Deliveries, s).await
            }));
        }
        handles
    }

    async fn fan_out_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = self.inbox.notified();
            match self.fan_out() {
                Ok(0) => {}
                Ok(_) => continue,
                Err(e) => tracing::error!(error = %e, "fan-out failed; retrying in 1 s"),
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
        let ids = self.store.inbox(256)?;
        let now = now_ms();
        // Marked done together at the end, as far as it got: one write for
        // the batch instead of one per event.
        let mut done = 0;
        let result = ids.iter().try_for_each(|id| {
            self.fan_out_one(id, now)?;
            done += 1;
            Ok::<_, PipelineError>(())
        });
        self.store.inbox_done(&ids[..done])?;
        result?;
        if !ids.is_empty() {
            self.jobs.notify_waiters();
        }
        Ok(ids.len())
    }

    /// Queues the jobs of one event.
    fn fan_out_one(&self, id: &str, now: u64) -> Result<(), PipelineError> {
        let Some(event) = self.store.event(id)? else {
            return Ok(());
        };
        let plugins = self.plugins.subscribers(&event.source, &event.kind);
        if plugins.is_empty() {
            tracing::info!(event = %id, source = %event.source, kind = %event.kind, "no plugin subscribes to this event");
        }
        let mut plain = Vec::new();
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
        self.queue.publish(&plain, now)?;
        Ok(())
    }

    async fn worker_loop(&self, topic: Topic, mut shutdown: watch::Receiver<bool>) {
        let (wake, lease_ms) = match topic {
            Topic::Jobs => (&self.jobs, MAX_TIMEOUT_MS + 30_000),
            Topic::Deliveries => (&self.deliveries, self.delivery.lease_ms()),
        };
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = wake.notified();
            let lease = match self.queue.lease(topic, now_ms(), lease_ms, 1) {
                Ok(mut l) => l.pop(),
                Err(e) => {
                    tracing::error!(topic = topic.name(), error = %e, "cannot lease work");
                    None
                }
            };
            let Some(lease) = lease else {
                let wait = match self.queue.next_due(topic) {
                    Ok(Some(due)) => due.saturating_sub(now_ms()).clamp(5, 1_000),
                    _ => 1_000,
                };
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let end = match topic {
                Topic::Jobs => self.run_job(&lease).await,
                Topic::Deliveries => self.run_delivery(&lease).await,
            };
            if let Err(e) = self.finish(topic, &lease, end).await {
                tracing::error!(topic = topic.name(), task = %lease.id, error = %e, "cannot record the outcome; the task will run again when its lease expires");
            }
        }
    }

    async fn finish(&self, topic: Topic, lease: &Lease, end: End) -> Result<(), PipelineError> {
        let now = now_ms();
        match end {
            End::Done(outcome, follow_ups) => {
                tracing::info!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, %outcome, "done");
                let queued = !follow_ups.is_empty();
                self.queue.ack(lease, &outcome, &follow_ups, now)?;
                self.metrics.attempt(topic, "done");
                if queued {
                    self.deliveries.notify_waiters();
                }
            }
            End::Retry(outcome, delay) => {
                tracing::warn!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, %outcome, delay_ms = delay, "will retry");
                self.queue.retry(lease, delay, &outcome, now)?;
                self.metrics.attempt(topic, "retry");
            }
            End::Defer(delay) => {
                // Nothing happened: no flush needed, a crash just re-leases it.
                self.queue.defer(lease, delay, now)?;
                self.metrics.attempt(topic, "deferred");
                return Ok(());
            }
            End::Dead(reason) => {
                tracing::error!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, %reason, "dead-lettered");
                self.queue.dead_letter(lease, &reason, now)?;
                self.metrics.attempt(topic, "dead");
            }
        }
        // The outcome must survive a crash, or a done job would run again.
        self.store.sync().await?;
        Ok(())
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
            return End::Dead(format!("URL `{}` has no scheme or host", d.request.url));
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
        self.metrics.delivery_latency.observe(started.elapsed());
        permit.record(matches!(sent, delivery::Sent::Retryable { .. }));
        match sent {
            delivery::Sent::Ok(status) => {
                if let Some(at) = event_time_ms(&d.event_id) {
                    self.metrics
                        .end_to_end_latency
                        .observe(Duration::from_millis(now_ms().saturating_sub(at)));
                }
                End::Done(format!("delivered: HTTP {status}"), vec![])
            }
            delivery::Sent::Retryable {
                reason,
                retry_after_ms,
            } => {
                if lease.attempt >= policy.max_attempts {
                    End::Dead(format!(
                        "gave up after {} attempts: {reason}",
                        lease.attempt
                    ))
                } else {
                    let delay =
                        retry_after_ms.unwrap_or_else(|| policy.backoff.delay_ms(lease.attempt));
                    End::Retry(reason, delay)
                }
            }
            delivery::Sent::Permanent(reason) => End::Dead(reason),
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
        }
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
