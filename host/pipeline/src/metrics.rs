//! Counters and histograms for `GET /metrics` (Prometheus text format).
//!
//! Plain atomics: recording never takes a lock on the hot path except for
//! the small labelled maps, which see one update per request or attempt.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fieldhook_store::queue::{Depth, TaskState, Topic};

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Minutes the per-minute counts cover.
pub const MINUTES: usize = 60;

/// What happened in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// Webhooks answered 2xx.
    pub received: u64,
    /// Deliveries that succeeded.
    pub delivered: u64,
    /// Delivery attempts that failed (to be retried, or dead).
    pub failed: u64,
    /// Plugin job attempts that failed (to be retried, or dead).
    pub plugin_errors: u64,
}

/// The last [`MINUTES`] minutes: bucket `minute % MINUTES`, reset when a
/// new minute reaches it. Memory only; a restart starts from zero.
#[derive(Debug)]
struct MinuteRing(Mutex<Vec<Minute>>);

impl Default for MinuteRing {
    fn default() -> Self {
        Self(Mutex::new(vec![Minute::default(); MINUTES]))
    }
}

impl MinuteRing {
    fn add(&self, now_minute: u64, f: impl FnOnce(&mut Minute)) {
        let mut ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = &mut ring[(now_minute % MINUTES as u64) as usize];
        if bucket.minute != now_minute {
            *bucket = Minute {
                minute: now_minute,
                ..Minute::default()
            };
        }
        f(bucket);
    }

    /// Oldest first, ending with `now_minute`; minutes without counts are zeros.
    fn last_hour(&self, now_minute: u64) -> Vec<Minute> {
        let ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (0..MINUTES as u64)
            .rev()
            .filter_map(|back| now_minute.checked_sub(back))
            .map(|minute| {
                let bucket = ring[(minute % MINUTES as u64) as usize];
                if bucket.minute == minute {
                    bucket
                } else {
                    Minute {
                        minute,
                        ..Minute::default()
                    }
                }
            })
            .collect()
    }
}

fn now_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

/// Everything the daemon counts.
#[derive(Debug, Default)]
pub struct Metrics {
    received: AtomicU64,
    minutes: MinuteRing,
    rejected: Mutex<BTreeMap<u16, u64>>,
    attempts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    coalesced: AtomicU64,
    /// Webhook request latency (verify + durable store + answer).
    pub ingest_latency: Histogram,
    /// Plugin call latency.
    pub plugin_latency: Histogram,
    /// Outbound delivery latency.
    pub delivery_latency: Histogram,
    /// From receipt of the event to a finished delivery.
    pub end_to_end_latency: Histogram,
}

impl Metrics {
    /// Counts a finished attempt of a task: `outcome` is `done`, `retry`,
    /// `dead` or `deferred`.
    pub fn attempt(&self, topic: Topic, outcome: &'static str) {
        let mut m = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((topic.name(), outcome)).or_default() += 1;
        drop(m);
        let failed = matches!(outcome, "retry" | "dead");
        match topic {
            Topic::Deliveries if outcome == "done" => {
                self.minutes.add(now_minute(), |b| b.delivered += 1)
            }
            Topic::Deliveries if failed => self.minutes.add(now_minute(), |b| b.failed += 1),
            Topic::Jobs if failed => self.minutes.add(now_minute(), |b| b.plugin_errors += 1),
            _ => {}
        }
    }

    /// Counts one webhook answered with `status`, which took `elapsed`.
    pub fn webhook(&self, status: u16, elapsed: Duration) {
        self.ingest_latency.observe(elapsed);
        if (200..300).contains(&status) {
            self.received.fetch_add(1, Ordering::Relaxed);
            self.minutes.add(now_minute(), |b| b.received += 1);
        } else {
            *self
                .rejected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(status)
                .or_default() += 1;
        }
    }

    /// Counts events merged into a waiting debounced job.
    pub fn coalesced(&self) {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    /// Webhooks answered 2xx.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The last hour minute by minute, oldest first, ending with this minute.
    pub fn last_hour(&self) -> Vec<Minute> {
        self.minutes.last_hour(now_minute())
    }

    /// Webhooks refused, by status.
    pub fn rejected(&self) -> BTreeMap<u16, u64> {
        self.rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Prometheus text for these metrics and the queue's depth.
    pub fn render(&self, depth: &Depth) -> String {
        let mut out = String::new();
        out.push_str("# HELP fieldhook_webhooks_received_total Webhooks answered 2xx (stored or duplicate).\n");
        out.push_str("# TYPE fieldhook_webhooks_received_total counter\n");
        let _ = writeln!(out, "fieldhook_webhooks_received_total {}", self.received());
        out.push_str("# HELP fieldhook_webhooks_rejected_total Webhooks refused, by the status answered (401/403 signature, 404 unknown source, 413 too large, 5xx store unavailable; vendors may map these).\n");
        out.push_str("# TYPE fieldhook_webhooks_rejected_total counter\n");
        for (status, n) in self.rejected() {
            let reason = match status {
                401 | 403 => "signature",
                404 => "unknown_source",
                413 => "too_large",
                500..=599 => "unavailable",
                _ => "other",
            };
            let _ = writeln!(
                out,
                "fieldhook_webhooks_rejected_total{{status=\"{status}\",reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP fieldhook_queue_tasks Tasks by topic and state (dead = dead-letter queue).\n",
        );
        out.push_str("# TYPE fieldhook_queue_tasks gauge\n");
        for (topic, state, n) in &depth.counts {
            let _ = writeln!(
                out,
                "fieldhook_queue_tasks{{topic=\"{}\",state=\"{}\"}} {n}",
                topic.name(),
                state.name()
            );
        }
        out.push_str("# HELP fieldhook_queue_depth Tasks waiting or running.\n");
        out.push_str("# TYPE fieldhook_queue_depth gauge\n");
        for topic in Topic::ALL {
            let n = depth.get(topic, TaskState::Ready) + depth.get(topic, TaskState::Leased);
            let _ = writeln!(
                out,
                "fieldhook_queue_depth{{topic=\"{}\"}} {n}",
                topic.name()
            );
        }
        out.push_str("# HELP fieldhook_dlq_size Dead-lettered tasks.\n");
        out.push_str("# TYPE fieldhook_dlq_size gauge\n");
        for topic in Topic::ALL {
            let _ = writeln!(
                out,
                "fieldhook_dlq_size{{topic=\"{}\"}} {}",
                topic.name(),
                depth.get(topic, TaskState::Dead)
            );
        }
        out.push_str("# HELP fieldhook_attempts_total Finished attempts by topic and outcome.\n");
        out.push_str("# TYPE fieldhook_attempts_total counter\n");
        for ((topic, outcome), n) in self
            .attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "fieldhook_attempts_total{{topic=\"{topic}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP fieldhook_events_coalesced_total Events merged into a waiting debounced job.\n",
        );
        out.push_str("# TYPE fieldhook_events_coalesced_total counter\n");
        let _ = writeln!(
            out,
            "fieldhook_events_coalesced_total {}",
            self.coalesced.load(Ordering::Relaxed)
        );
        for (name, help, h) in [
            (
                "fieldhook_ingest_seconds",
                "Webhook request latency.",
                &self.ingest_latency,
            ),
            (
                "fieldhook_plugin_seconds",
                "Plugin call latency.",
                &self.plugin_latency,
            ),
            (
                "fieldhook_delivery_seconds",
                "Outbound request latency.",
                &self.delivery_latency,
            ),
            (
                "fieldhook_end_to_end_seconds",
                "Event receipt to delivered.",
                &self.end_to_end_latency,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            h.render(&mut out, name, "");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_ring_keeps_the_last_hour_and_forgets_older_minutes() {
        let ring = MinuteRing::default();
        ring.add(1_000, |b| b.received += 2);
        ring.add(1_059, |b| b.delivered += 1);
        let hour = ring.last_hour(1_059);
        assert_eq!(hour.len(), MINUTES);
        assert_eq!((hour[0].minute, hour[0].received), (1_000, 2));
        assert_eq!((hour[59].minute, hour[59].delivered), (1_059, 1));
        // Minute 1_060 takes minute 1_000's bucket.
        ring.add(1_060, |b| b.failed += 1);
        let hour = ring.last_hour(1_060);
        assert_eq!(hour[0].minute, 1_001);
        assert_eq!(hour.iter().map(|m| m.received).sum::<u64>(), 0);
        assert_eq!(hour[59].failed, 1);
        // An hour of silence reads as zeros, not as stale buckets.
        assert!(
            ring.last_hour(2_000)
                .iter()
                .all(|m| m.delivered == 0 && m.failed == 0)
        );
    }

    #[test]
    fn the_text_format_has_cumulative_buckets_and_every_queue_gauge() {
        let m = Metrics::default();
        m.plugin_latency.observe(Duration::from_millis(3));
        m.plugin_latency.observe(Duration::from_millis(30));
        m.attempt(Topic::Deliveries, "dead");
        let depth = Depth {
            counts: vec![(Topic::Deliveries, TaskState::Dead, 2)],
        };
        let text = m.render(&depth);
        assert!(
            text.contains("fieldhook_plugin_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fieldhook_plugin_seconds_bucket{le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fieldhook_dlq_size{topic=\"deliveries\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fieldhook_attempts_total{topic=\"deliveries\",outcome=\"dead\"} 1"),
            "{text}"
        );
    }
}
