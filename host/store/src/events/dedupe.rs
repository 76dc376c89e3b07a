//! The dedupe index: which (source, dedupe key) pairs were stored recently,
//! and under which event id.
//!
//! Every stored event carries its dedupe key, so the events themselves are
//! the durable record and this index is rebuilt from them: ingest reads
//! back the events of the dedupe window the first time it needs them.
//! Keeping the index out of sled saves one tree insert per event on the
//! ingest path.
//!
//! Entries are a 128-bit digest of source and key, so each costs the same
//! few dozen bytes whatever the sender puts in its message ids.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

/// Digest of one (source, dedupe key) pair.
type Fingerprint = [u8; 16];

fn fingerprint(source: &str, key: &str) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    // Sources are names without NUL, so the pair is unambiguous.
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Recent dedupe keys and the event each was first stored as.
#[derive(Default)]
pub(super) struct DedupeIndex {
    latest: HashMap<Fingerprint, Entry>,
    /// Insertion order, oldest first, to expire entries.
    order: VecDeque<(u64, Fingerprint)>,
    /// Every event received at or after this time is in the index; `None`
    /// until the first rebuild.
    covers_from_ms: Option<u64>,
}

/// A stored event's dedupe entry, read back from the store.
pub(super) struct Stored {
    fp: Fingerprint,
    id: String,
    at: u64,
}

impl Stored {
    /// Event `id`, received at `at` (Unix ms) from `source` with this key.
    pub(super) fn new(source: &str, key: &str, id: &str, at: u64) -> Self {
        Self {
            fp: fingerprint(source, key),
            id: id.to_owned(),
            at,
        }
    }
}

#[derive(Clone)]
struct Entry {
    id: String,
    received_at_ms: u64,
}

impl DedupeIndex {
    /// From when on the index must hold every stored event, given the
    /// window a request asks for; `None` when it already does.
    pub(super) fn needs_events_since(&self, now_ms: u64, window_ms: u64) -> Option<u64> {
        let want = now_ms.saturating_sub(window_ms);
        match self.covers_from_ms {
            Some(from) if from <= want => None,
            _ => Some(want),
        }
    }

    /// Since when the index holds every stored event, if it was filled.
    pub(super) fn covered_from(&self) -> Option<u64> {
        self.covers_from_ms
    }

    /// Adds events read back from the store, all received before anything
    /// already indexed, oldest first; the index now covers `since_ms`.
    pub(super) fn backfill(&mut self, since_ms: u64, events: Vec<Stored>) {
        for Stored { fp, id, at } in events.into_iter().rev() {
            // A newer event under the same key (already indexed) wins.
            if let std::collections::hash_map::Entry::Vacant(slot) = self.latest.entry(fp) {
                slot.insert(Entry {
                    id,
                    received_at_ms: at,
                });
                self.order.push_front((at, fp));
            }
        }
        self.covers_from_ms = Some(since_ms);
    }

    /// The earlier event stored under this key less than `window_ms` before
    /// `received_at_ms`, if any.
    pub(super) fn duplicate_of(
        &self,
        source: &str,
        key: &str,
        received_at_ms: u64,
        window_ms: u64,
    ) -> Option<&str> {
        let e = self.latest.get(&fingerprint(source, key))?;
        (received_at_ms.saturating_sub(e.received_at_ms) < window_ms).then_some(e.id.as_str())
    }

    /// Records that `id` was stored under this key.
    pub(super) fn insert(&mut self, source: &str, key: &str, id: &str, received_at_ms: u64) {
        let fp = fingerprint(source, key);
        self.latest.insert(
            fp,
            Entry {
                id: id.to_owned(),
                received_at_ms,
            },
        );
        self.order.push_back((received_at_ms, fp));
    }

    /// Forgets this key (its event was not stored after all).
    pub(super) fn remove(&mut self, source: &str, key: &str) {
        self.latest.remove(&fingerprint(source, key));
    }

    /// Forgets entries received before `before_ms`; the index then covers
    /// from there on.
    pub(super) fn expire(&mut self, before_ms: u64) {
        while let Some(&(at, fp)) = self.order.front() {
            if at >= before_ms {
                break;
            }
            self.order.pop_front();
            // Only if no later event refreshed the key.
            if self.latest.get(&fp).is_some_and(|e| e.received_at_ms == at) {
                self.latest.remove(&fp);
            }
        }
        if let Some(from) = &mut self.covers_from_ms {
            *from = (*from).max(before_ms);
        }
    }

    /// Keys indexed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.latest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_a_duplicate_inside_the_window_only_and_per_source() {
        let mut index = DedupeIndex::default();
        index.insert("a", "k", "evt_1", 1_000);
        assert_eq!(index.duplicate_of("a", "k", 1_400, 500), Some("evt_1"));
        assert_eq!(index.duplicate_of("a", "k", 1_500, 500), None);
        assert_eq!(index.duplicate_of("b", "k", 1_400, 500), None);
        // "a"+"bk" must not collide with "ab"+"k".
        assert_eq!(index.duplicate_of("a", "bk", 1_400, 500), None);
        index.insert("ab", "k", "evt_2", 1_000);
        assert_eq!(index.duplicate_of("a", "k", 1_400, 500), Some("evt_1"));
    }

    #[test]
    fn expiry_keeps_a_key_refreshed_by_a_later_event() {
        let mut index = DedupeIndex::default();
        index.insert("a", "k", "evt_1", 1_000);
        index.insert("a", "other", "evt_2", 1_100);
        index.insert("a", "k", "evt_3", 2_000);
        index.expire(1_500);
        assert_eq!(index.duplicate_of("a", "k", 2_100, 500), Some("evt_3"));
        assert_eq!(index.duplicate_of("a", "other", 1_200, 500), None);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_backfill_covers_its_start_and_never_overrides_newer_entries() {
        let mut index = DedupeIndex::default();
        assert_eq!(index.needs_events_since(10_000, 3_000), Some(7_000));
        index.insert("a", "k", "evt_new", 9_000);
        index.backfill(
            7_000,
            vec![
                Stored::new("a", "k", "evt_old", 7_500),
                Stored::new("a", "j", "evt_j", 8_000),
            ],
        );
        assert_eq!(index.needs_events_since(10_000, 3_000), None);
        assert_eq!(index.needs_events_since(10_000, 4_000), Some(6_000));
        assert_eq!(index.duplicate_of("a", "k", 9_100, 3_000), Some("evt_new"));
        assert_eq!(index.duplicate_of("a", "j", 9_100, 3_000), Some("evt_j"));
        // Backfilled entries expire first, in receive order.
        index.expire(7_900);
        assert_eq!(index.duplicate_of("a", "j", 9_100, 3_000), Some("evt_j"));
        assert_eq!(index.duplicate_of("a", "k", 9_100, 3_000), Some("evt_new"));
        assert_eq!(index.needs_events_since(10_000, 3_000), Some(7_000));
    }
}
