//! What the queue's tasks carry: a job runs one event through one plugin,
//! a delivery sends one request a plugin returned.

use serde::{Deserialize, Serialize};

use crate::decision::Outbound;

/// A job's payload: which event, which plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    /// Event id (for a debounced job, the latest event of the burst).
    pub event_id: String,
    /// Plugin name.
    pub plugin: String,
    /// How many events this run stands for (1 unless debounced).
    pub coalesced: u32,
    /// Every event of the burst, oldest first (at most
    /// [`MAX_COALESCED_IDS`] kept).
    pub events: Vec<String>,
}

/// Most event ids a debounced job remembers.
pub const MAX_COALESCED_IDS: usize = 100;

impl JobPayload {
    /// A waiting debounced job takes `latest`, the newest event of its
    /// burst. A fan-out redone after a crash must not count an event twice:
    /// returns false when `latest` is already part of the burst.
    pub fn absorb(&mut self, latest: &str) -> bool {
        if self.events.iter().any(|e| e == latest) {
            return false;
        }
        self.event_id = latest.to_owned();
        self.coalesced = self.coalesced.saturating_add(1);
        if self.events.len() < MAX_COALESCED_IDS {
            self.events.push(latest.to_owned());
        }
        true
    }
}

/// A delivery's payload: the request and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_keeps_the_latest_event_and_counts_each_event_once() {
        let mut job = JobPayload {
            event_id: "evt_1".into(),
            plugin: "p".into(),
            coalesced: 1,
            events: vec!["evt_1".into()],
        };
        assert!(job.absorb("evt_2"));
        assert!(!job.absorb("evt_2"), "a redone fan-out counts nothing");
        assert_eq!((job.event_id.as_str(), job.coalesced), ("evt_2", 2));
        assert_eq!(job.events, ["evt_1", "evt_2"]);
    }
}
