//! Retention: finished work and old payloads expire, so the store does not
//! grow without bound.
//!
//! Every sweep removes, oldest first (ids sort by receive time, so each scan
//! stops at the cut-off and costs only what it removes):
//! - done jobs and deliveries of events older than `finished_secs`;
//! - events older than `events_secs` with no work left (nothing waiting,
//!   running or dead-lettered: a dead letter keeps its event for replay);
//! - dedupe entries older than the dedupe window.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

use super::{Pipeline, PipelineError, event_id_at};
use crate::queue::{TaskState, Topic};
use crate::time::now_ms;

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
    pub async fn retention_loop(&self, r: Retention, dedupe_window_ms: u64, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(r.sweep_secs.max(1))) => {}
                _ = shutdown.changed() => return,
            }
            match self.sweep(&r, dedupe_window_ms, now_ms()) {
                Ok(s) if s != Swept::default() => tracing::info!(?s, "retention sweep"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention sweep failed; trying again next time"),
            }
        }
    }

    /// One sweep at `now_ms`.
    pub fn sweep(&self, r: &Retention, dedupe_window_ms: u64, now_ms: u64) -> Result<Swept, PipelineError> {
        let mut swept = Swept::default();
        let finished_before = event_id_at(now_ms.saturating_sub(r.finished_secs * 1000));
        for topic in Topic::ALL {
            swept.tasks += self.queue.purge_done(topic, &finished_before, SWEEP_BATCH)?;
        }
        let events_before = event_id_at(now_ms.saturating_sub(r.events_secs * 1000));
        for id in self.store.event_ids_between("evt_", &events_before, SWEEP_BATCH, None)? {
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
            if !busy && self.store.delete_event(&id)? {
                swept.events += 1;
            }
        }
        swept.dedupe = self
            .store
            .prune_dedupe(now_ms.saturating_sub(dedupe_window_ms), SWEEP_BATCH)?;
        Ok(swept)
    }
}
