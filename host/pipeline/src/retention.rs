//! Retention: finished work and old payloads expire, so the store does not
//! grow without bound.
//!
//! Every sweep removes, oldest first (ids sort by receive time, so each scan
//! stops at the cut-off and costs only what it removes):
//! - done jobs and deliveries of events older than `finished_secs`;
//! - events older than `events_secs` with no work left (nothing waiting,
//!   running or dead-lettered: a dead letter keeps its event for replay),
//!   and never inside the dedupe window: the stored events are what the
//!   dedupe index is rebuilt from after a restart;
//! - legacy dedupe entries older than the dedupe window.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

use fieldhook_core::event::event_id_at;
use fieldhook_core::time::now_ms;
use fieldhook_store::queue::{TaskState, Topic};

use crate::{Pipeline, PipelineError};

/// Most records one sweep removes per kind, so a sweep stays short.
const SWEEP_BATCH: usize = 10_000;

/// `[retention]` in the daemon config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Keep events (payloads) this long, seconds.
    pub events_secs: u64,
    /// Keep done jobs and deliveries this long, seconds.
    pub finished_secs: u64,
    /// Time between sweeps, seconds.
    pub sweep_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events_secs: 7 * 86_400,
            finished_secs: 7 * 86_400,
            sweep_secs: 60,
        }
    }
}

/// What one sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    /// Done tasks.
    pub tasks: usize,
    /// Events.
    pub events: usize,
    /// Dedupe entries.
    pub dedupe: usize,
}

impl Pipeline {
    /// Runs sweeps until shutdown.
    pub async fn retention_loop(
        &self,
        mut settings: watch::Receiver<Retention>,
        dedupe_window_ms: u64,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let sweep_secs = settings.borrow().sweep_secs.max(1);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(sweep_secs)) => {}
                // A reloaded configuration: wait by its interval from now.
                Ok(()) = settings.changed() => continue,
                _ = shutdown.changed() => return,
            }
            let r = settings.borrow().clone();
            match self.sweep(&r, dedupe_window_ms, now_ms()) {
                Ok(s) if s != Swept::default() => tracing::info!(?s, "retention sweep"),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "retention sweep failed; trying again next time")
                }
            }
        }
    }

    /// One sweep at `now_ms`.
    pub fn sweep(
        &self,
        r: &Retention,
        dedupe_window_ms: u64,
        now_ms: u64,
    ) -> Result<Swept, PipelineError> {
        let mut swept = Swept::default();
        let finished_before =
            event_id_at(now_ms.saturating_sub(r.finished_secs.saturating_mul(1000)));
        // Slot ids sort by time within their schedule
        // (`plugin/schedule/slot_ms`): each loaded schedule's done slots
        // older than `finished_secs` go, the newest always stays (its last
        // run, for `/schedules`).
        let slots_before = now_ms.saturating_sub(r.finished_secs.saturating_mul(1000));
        for plugin in self.plugins.snapshot().values() {
            for s in &plugin.manifest.schedules {
                let prefix = format!("{}/{}/", plugin.manifest.name, s.name);
                let newest = self
                    .queue
                    .with_prefix(Topic::Schedules, &prefix)?
                    .into_iter()
                    .filter(|t| t.state.is_finished())
                    .map(|t| t.id)
                    .max();
                let cutoff =
                    crate::schedules::slot_id(&plugin.manifest.name, &s.name, slots_before);
                let before = match newest {
                    Some(newest) if newest < cutoff => newest,
                    _ => cutoff,
                };
                swept.tasks +=
                    self.queue
                        .purge_done_in(Topic::Schedules, &prefix, &before, SWEEP_BATCH)?;
            }
        }
        for topic in [Topic::Jobs, Topic::Deliveries] {
            swept.tasks += self
                .queue
                .purge_done(topic, &finished_before, SWEEP_BATCH)?;
        }
        let keep_ms = r.events_secs.saturating_mul(1000).max(dedupe_window_ms);
        let events_before = event_id_at(now_ms.saturating_sub(keep_ms));
        for id in self
            .store
            .event_ids_between("evt_", &events_before, SWEEP_BATCH, None)?
        {
            let prefix = format!("{id}.");
            let busy = Topic::ALL.into_iter().try_fold(false, |busy, topic| {
                Ok::<_, PipelineError>(
                    busy || self
                        .queue
                        .with_prefix(topic, &prefix)?
                        .iter()
                        .any(|t| t.state != TaskState::Done),
                )
            })?;
            if !busy && !self.queue.waiting_fan_out(&id) && self.store.delete_event(&id)? {
                swept.events += 1;
            }
        }
        swept.dedupe = self
            .store
            .prune_dedupe(now_ms.saturating_sub(dedupe_window_ms), SWEEP_BATCH)?;
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fieldhook_capabilities::{Capabilities, Sandbox};
    use fieldhook_core::event::{Message, NewEvent};
    use fieldhook_runtime::directory::PluginSet;
    use fieldhook_runtime::{CodeCache, Runtime};
    use fieldhook_store::EventStore;
    use fieldhook_store::queue::{NewTask, Queue, TaskLog};

    use super::*;
    use crate::delivery::{Deliverer, DeliveryGuard, DeliverySettings};
    use crate::metrics::Metrics;
    use crate::policy::{Destinations, JobPolicies};

    async fn pipeline(dir: &std::path::Path) -> Pipeline {
        let store = EventStore::open(&dir.join("db")).unwrap();
        let queue: Arc<dyn TaskLog> = Arc::new(Queue::open(&store).unwrap());
        let delivery = DeliverySettings::default();
        let caps = Arc::new(Capabilities::offline(Sandbox::default()));
        let plugins = Arc::new(PluginSet::default());
        let guard = DeliveryGuard::new(caps.clone(), plugins.clone());
        Pipeline {
            store,
            queue,
            plugins,
            runtime: Arc::new(Runtime::new(CodeCache::new(&dir.join("compiled")), caps).unwrap()),
            delivery: Deliverer::new(delivery.clone(), guard).unwrap(),
            destinations: Destinations::new(&delivery, &[]),
            entity_rules: vec![],
            metrics: Arc::new(Metrics::default()),
            job_policies: JobPolicies::new(3, &delivery, &[]),
            inbox: Default::default(),
            schedules: Default::default(),
            jobs: Default::default(),
            deliveries: Default::default(),
        }
    }

    fn event(at_ms: u64, dedupe: &str) -> NewEvent {
        NewEvent {
            source: "a".into(),
            vendor: "hmac".into(),
            kind: "k".into(),
            entity: None,
            occurred_at: None,
            dedupe_key: Some(dedupe.into()),
            parsed: true,
            received_at_ms: at_ms,
            message: Arc::new(Message {
                headers: vec![],
                body: b"{}".to_vec(),
            }),
        }
    }

    #[tokio::test]
    async fn old_finished_work_and_payloads_expire_but_dead_letters_keep_their_event() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path()).await;
        let now = fieldhook_core::time::now_ms();
        let out = p
            .store
            .ingest(vec![event(now, "x"), event(now, "y")], 1000)
            .await
            .unwrap();
        let (done_id, dead_id) = (out[0].id().to_owned(), out[1].id().to_owned());
        p.queue.fanned_out(&[], Some(&dead_id), &[], now).unwrap();
        p.queue
            .publish(
                &[
                    NewTask::new(Topic::Jobs, format!("{done_id}.p"), vec![]),
                    NewTask::new(Topic::Jobs, format!("{dead_id}.p"), vec![]),
                ],
                now,
            )
            .unwrap();
        for lease in p
            .queue
            .lease(Topic::Jobs, now, 1000, 10)
            .unwrap()
            .durable()
            .await
            .unwrap()
        {
            if lease.id.starts_with(&done_id) {
                p.queue.ack(&lease, "ok", &[], now).unwrap();
            } else {
                p.queue.dead_letter(&lease, "gave up", now).unwrap();
            }
        }
        let r = Retention {
            events_secs: 60,
            finished_secs: 60,
            sweep_secs: 1,
        };
        assert_eq!(
            p.sweep(&r, 1000, now).unwrap(),
            Swept::default(),
            "nothing is old yet"
        );

        let later = now + 120_000;
        assert_eq!(
            p.sweep(&r, 600_000, later).unwrap(),
            Swept {
                tasks: 1,
                events: 0,
                dedupe: 0
            },
            "events stay as long as the dedupe window: they are what it is rebuilt from"
        );
        assert_eq!(
            p.sweep(&r, 1000, later).unwrap(),
            Swept {
                tasks: 0,
                events: 1,
                dedupe: 0
            }
        );
        assert!(p.store.event(&done_id).unwrap().is_none());
        assert!(
            p.store.event(&dead_id).unwrap().is_some(),
            "a dead letter's event stays for replay"
        );
        assert_eq!(
            p.queue
                .get(Topic::Jobs, &format!("{dead_id}.p"))
                .unwrap()
                .unwrap()
                .state,
            TaskState::Dead
        );
        assert_eq!(
            p.sweep(&r, 1000, later).unwrap(),
            Swept::default(),
            "a second sweep finds nothing"
        );
    }
    #[tokio::test]
    async fn events_split_from_one_message_expire_one_by_one_and_a_dead_letter_keeps_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path()).await;
        let now = fieldhook_core::time::now_ms();
        let message = Arc::new(Message {
            headers: vec![],
            body: br#"{"data":[1,2,3]}"#.to_vec(),
        });
        let split: Vec<NewEvent> = ["x", "y", "z"]
            .into_iter()
            .map(|k| NewEvent {
                message: message.clone(),
                ..event(now, k)
            })
            .collect();
        let ids: Vec<String> = p
            .store
            .ingest(split, 1000)
            .await
            .unwrap()
            .iter()
            .map(|o| o.id().to_owned())
            .collect();
        assert_eq!(p.store.message_count(), 1, "stored once for the three");
        p.queue.fanned_out(&[], Some(&ids[2]), &[], now).unwrap();
        let tasks: Vec<NewTask> = ids
            .iter()
            .map(|id| NewTask::new(Topic::Jobs, format!("{id}.p"), vec![]))
            .collect();
        p.queue.publish(&tasks, now).unwrap();
        let dead = &ids[1];
        for lease in p
            .queue
            .lease(Topic::Jobs, now, 1000, 10)
            .unwrap()
            .durable()
            .await
            .unwrap()
        {
            if lease.id.starts_with(dead.as_str()) {
                p.queue.dead_letter(&lease, "gave up", now).unwrap();
            } else {
                p.queue.ack(&lease, "ok", &[], now).unwrap();
            }
        }
        let r = Retention {
            events_secs: 60,
            finished_secs: 60,
            sweep_secs: 1,
        };
        let swept = p.sweep(&r, 1000, now + 120_000).unwrap();
        assert_eq!(swept.events, 2, "{swept:?}");
        assert_eq!(p.store.message_count(), 1, "the dead letter still needs it");
        let kept = p.store.event(dead).unwrap().expect("kept for replay");
        assert_eq!(kept.body, message.body, "and reads it whole");
        assert!(p.store.delete_event(dead).unwrap());
        assert_eq!(p.store.message_count(), 0, "gone with its last event");
    }
}
