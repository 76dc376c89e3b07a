//! Off the request path: fan events out to plugins, run them, deliver.
//!
//! - The fan-out task turns each stored event into one job per subscribed
//!   plugin (job id `{event id}.{plugin}`, so redoing a fan-out after a crash
//!   queues nothing twice).
//! - Job workers lease jobs, call the plugin, and ack the job together with
//!   the deliveries it asked for (one transaction).
//! - Delivery workers send those requests ([`delivery`]).

pub mod delivery;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::manifest::MAX_TIMEOUT_MS;
use crate::plugins::PluginSet;
use crate::queue::{Lease, NewTask, Queue, Topic};
use crate::runtime::{Decision, Outbound, Runtime};
use crate::store::Store;
use crate::time::now_ms;

/// Attempts per job before it is dead-lettered.
pub const MAX_JOB_ATTEMPTS: u32 = 3;
/// Most requests one decision may ask for.
pub const MAX_REQUESTS_PER_DECISION: usize = 100;

/// A job's payload: which event, which plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPayload {
    /// Event id.
    pub event_id: String,
    /// Plugin name.
    pub plugin: String,
}

/// A delivery's payload: the request and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryPayload {
    /// Event id.
    pub event_id: String,
    /// Plugin that asked for it.
    pub plugin: String,
    /// The request.
    pub request: Outbound,
    /// Sent as `Idempotency-Key`.
    pub idempotency_key: String,
}

/// Everything the workers share.
pub struct Pipeline {
    /// Event store.
    pub store: Store,
    /// Work queue.
    pub queue: Queue,
    /// Loaded plugins.
    pub plugins: Arc<PluginSet>,
    /// Plugin runtime.
    pub runtime: Arc<Runtime>,
    /// Outbound delivery settings and client.
    pub delivery: delivery::Deliverer,
    /// First retry delay, ms; doubles with each attempt (full jitter).
    pub retry_base_ms: u64,
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

/// Outcome recorded on a job, and whether it needs retrying.
enum JobEnd {
    Done(String, Vec<NewTask>),
    /// Retry after the given delay, or after the backoff when none.
    Retry(String, Option<u64>),
    Dead(String),
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
            handles.push(tokio::spawn(async move { p.worker_loop(Topic::Jobs, s).await }));
        }
        for _ in 0..deliveries.max(1) {
            let p = self.clone();
            let s = shutdown.clone();
            handles.push(tokio::spawn(async move { p.worker_loop(Topic::Deliveries, s).await }));
        }
        handles
    }

    async fn fan_out_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
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
    pub fn fan_out(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let ids = self.store.inbox(256)?;
        for id in &ids {
            let Some(event) = self.store.event(id)? else {
                self.store.inbox_done(id)?;
                continue;
            };
            let tasks: Vec<NewTask> = self
                .plugins
                .subscribers(&event.source, &event.kind)
                .into_iter()
                .map(|plugin| NewTask {
                    topic: Topic::Jobs,
                    id: format!("{id}.{plugin}"),
                    payload: encode(&JobPayload {
                        event_id: id.clone(),
                        plugin,
                    }),
                })
                .collect();
            if tasks.is_empty() {
                tracing::info!(event = %id, source = %event.source, kind = %event.kind, "no plugin subscribes to this event");
            }
            self.queue.publish(&tasks, now_ms())?;
            self.store.inbox_done(id)?;
        }
        if !ids.is_empty() {
            self.jobs.notify_waiters();
        }
        Ok(ids.len())
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

    async fn finish(&self, topic: Topic, lease: &Lease, end: JobEnd) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let now = now_ms();
        match end {
            JobEnd::Done(outcome, follow_ups) => {
                tracing::info!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, %outcome, "done");
                let queued = !follow_ups.is_empty();
                self.queue.ack(lease, &outcome, &follow_ups, now)?;
                if queued {
                    self.deliveries.notify_waiters();
                }
            }
            JobEnd::Retry(outcome, delay) => {
                let delay = delay.unwrap_or_else(|| backoff_ms(lease.attempt, self.retry_base_ms));
                tracing::warn!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, %outcome, delay_ms = delay, "will retry");
                self.queue.retry(lease, delay, &outcome, now)?;
            }
            JobEnd::Dead(reason) => {
                tracing::error!(topic = topic.name(), task = %lease.id, attempt = lease.attempt, %reason, "dead-lettered");
                self.queue.dead_letter(lease, &reason, now)?;
            }
        }
        // The outcome must survive a crash, or a done job would run again.
        self.store.sync().await?;
        Ok(())
    }

    async fn run_job(&self, lease: &Lease) -> JobEnd {
        let Ok(job) = postcard::from_bytes::<JobPayload>(&lease.payload) else {
            return JobEnd::Dead("job record is corrupt".into());
        };
        let event = match self.store.event(&job.event_id) {
            Ok(Some(e)) => e,
            Ok(None) => return JobEnd::Dead(format!("event {} is no longer stored", job.event_id)),
            Err(e) => return JobEnd::Retry(format!("cannot read event: {e}"), None),
        };
        let Some(plugin) = self.plugins.get(&job.plugin) else {
            return retry_or_dead(lease, format!("plugin `{}` is not loaded", job.plugin));
        };
        let report = self.runtime.call(&plugin, &event, lease.attempt).await;
        tracing::debug!(plugin = %job.plugin, event = %job.event_id, elapsed_us = report.elapsed.as_micros() as u64, "plugin call");
        match report.result {
            Ok(Decision::Filtered) => JobEnd::Done("filtered out by the plugin".into(), vec![]),
            Ok(Decision::Drop(reason)) => JobEnd::Done(format!("dropped: {reason}"), vec![]),
            Ok(Decision::Deliver(requests)) => match self.deliveries_for(lease, &job, requests) {
                Ok(tasks) => JobEnd::Done(format!("queued {} deliveries", tasks.len()), tasks),
                Err(reason) => JobEnd::Dead(reason),
            },
            Err(e) if e.retryable() => retry_or_dead(lease, e.to_string()),
            Err(e) => JobEnd::Dead(e.to_string()),
        }
    }

    /// Checks a decision's requests and turns them into delivery tasks.
    fn deliveries_for(&self, lease: &Lease, job: &JobPayload, requests: Vec<Outbound>) -> Result<Vec<NewTask>, String> {
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
                Ok(NewTask {
                    topic: Topic::Deliveries,
                    id: format!("{}.{i}", lease.id),
                    payload: encode(&DeliveryPayload {
                        event_id: job.event_id.clone(),
                        plugin: job.plugin.clone(),
                        request,
                        idempotency_key,
                    }),
                })
            })
            .collect()
    }

    async fn run_delivery(&self, lease: &Lease) -> JobEnd {
        let Ok(d) = postcard::from_bytes::<DeliveryPayload>(&lease.payload) else {
            return JobEnd::Dead("delivery record is corrupt".into());
        };
        match self.delivery.send(&d).await {
            delivery::Sent::Ok(status) => JobEnd::Done(format!("delivered: HTTP {status}"), vec![]),
            delivery::Sent::Retryable { reason, retry_after_ms } => {
                if lease.attempt >= self.delivery.max_attempts() {
                    JobEnd::Dead(format!("gave up after {} attempts: {reason}", lease.attempt))
                } else {
                    JobEnd::Retry(reason, retry_after_ms)
                }
            }
            delivery::Sent::Permanent(reason) => JobEnd::Dead(reason),
        }
    }
}

fn retry_or_dead(lease: &Lease, reason: String) -> JobEnd {
    if lease.attempt >= MAX_JOB_ATTEMPTS {
        JobEnd::Dead(format!("gave up after {} attempts: {reason}", lease.attempt))
    } else {
        JobEnd::Retry(reason, None)
    }
}

/// Exponential backoff with full jitter: uniform in [0, base * 2^(attempt-1)],
/// capped at 5 minutes.
fn backoff_ms(attempt: u32, base_ms: u64) -> u64 {
    let ceiling = base_ms
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(300_000);
    rand::random_range(0..=ceiling)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain owned data into a Vec cannot fail.
    postcard::to_stdvec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_below_an_exponential_ceiling_capped_at_five_minutes() {
        for attempt in 1..=4 {
            let ceiling = 100 * (1 << (attempt - 1));
            for _ in 0..200 {
                assert!(backoff_ms(attempt, 100) <= ceiling);
            }
        }
        assert!((0..200).all(|_| backoff_ms(40, 1_000) <= 300_000));
        // Full jitter: not always the ceiling.
        assert!((0..200).any(|_| backoff_ms(4, 1_000) < 8_000));
    }
}
