//! Whether the store can write: for `/readyz`, metrics and the log.
//!
//! A full disk or a failing device makes writes fail while reads go on.
//! Every write that fails or succeeds reports here; the log says when
//! writing stopped and when it came back (and every minute in between),
//! not once per refused request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use fieldhook_core::time::now_ms;

/// How often a still-failing store is mentioned in the log again.
const REMIND_MS: u64 = 60_000;

/// The store's write health, shared by its handles.
#[derive(Debug, Default)]
pub struct WriteHealth {
    /// When writes began to fail (ms since the epoch); 0 while they work.
    failing_since_ms: AtomicU64,
    /// Writes refused since they began to fail.
    refused: AtomicU64,
    /// Writes that failed since start.
    failures_total: AtomicU64,
    /// The last failure and when it was logged.
    last: Mutex<(String, u64)>,
}

/// What [`WriteHealth::snapshot`] reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteState {
    /// Whether the last write succeeded.
    pub writable: bool,
    /// While failing: since when (ms since the epoch).
    pub failing_since_ms: Option<u64>,
    /// While failing: the last error.
    pub error: Option<String>,
    /// While failing: writes refused so far.
    pub refused: u64,
    /// Writes that failed since start.
    pub failures_total: u64,
}

impl WriteHealth {
    /// A write failed with `error`.
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        let now = now_ms().max(1);
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        let refused = self
            .refused
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let began = self
            .failing_since_ms
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.0 = error.to_string();
        if began {
            last.1 = now;
            tracing::error!(
                error = %last.0,
                "the store cannot write: webhooks get 503 (vendors retry) and nothing new is \
                 accepted until it can; free space or fix the device, fieldhook resumes by itself"
            );
        } else if now.saturating_sub(last.1) >= REMIND_MS {
            last.1 = now;
            tracing::error!(error = %last.0, refused, "the store still cannot write");
        }
    }

    /// A write succeeded.
    pub(crate) fn succeeded(&self) {
        // The common case: one load.
        if self.failing_since_ms.load(Ordering::Acquire) == 0 {
            return;
        }
        let since = self.failing_since_ms.swap(0, Ordering::AcqRel);
        if since != 0 {
            let refused = self.refused.swap(0, Ordering::Relaxed);
            tracing::info!(
                after_ms = now_ms().saturating_sub(since),
                refused,
                "the store writes again"
            );
        }
    }

    /// The current state.
    pub fn snapshot(&self) -> WriteState {
        let since = self.failing_since_ms.load(Ordering::Acquire);
        let failing = since != 0;
        WriteState {
            writable: !failing,
            failing_since_ms: failing.then_some(since),
            error: failing.then(|| {
                self.last
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .0
                    .clone()
            }),
            refused: if failing {
                self.refused.load(Ordering::Relaxed)
            } else {
                0
            },
            failures_total: self.failures_total.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_makes_the_store_unwritable_until_a_write_succeeds() {
        let h = WriteHealth::default();
        assert!(h.snapshot().writable);
        h.failed(&"No space left on device");
        h.failed(&"No space left on device");
        let s = h.snapshot();
        assert!(!s.writable);
        assert_eq!(s.refused, 2);
        assert_eq!(s.error.as_deref(), Some("No space left on device"));
        h.succeeded();
        let s = h.snapshot();
        assert!(s.writable && s.error.is_none() && s.refused == 0);
        assert_eq!(s.failures_total, 2);
    }
}
