//! Storing new events: dedupe, ids, and the order they are written in.
//!
//! One lock covers the dedupe check, id assignment, the sled insert and the
//! journal append of every event, so ids increase in the order events are
//! journaled: an event is waiting for fan-out exactly when its id is past
//! the fan-out cursor, and the dedupe index can live in memory
//! ([`super::dedupe`]). The caller then waits for the journal's next sync,
//! which every request waiting at that moment shares.

use ulid::Ulid;

use fieldhook_core::event::event_id;

use super::dedupe::{DedupeIndex, Stored};
use super::record::{DedupeFields, Unnumbered};
use super::{EVENT, Ingested, NewEvent, StoreError, key};
use crate::journal::{Change, Frames};

/// An event ready to write: its record encoded by the caller, outside the
/// lock, so the locked part only checks, numbers and writes.
pub(crate) struct Prepared {
    pub(crate) record: Unnumbered,
    pub(crate) source: String,
    pub(crate) dedupe_key: Option<String>,
    pub(crate) received_at_ms: u64,
}

impl Prepared {
    pub(crate) fn new(event: NewEvent) -> Self {
        use super::record::Encode as _;
        Self {
            record: event.encode_unnumbered(),
            source: event.source,
            dedupe_key: event.dedupe_key,
            received_at_ms: event.received_at_ms,
        }
    }
}

/// What the lock protects.
pub(crate) struct Ingest {
    index: DedupeIndex,
    /// The widest dedupe window asked for: the index keeps that much.
    widest_window_ms: u64,
    /// The last id assigned; the next is greater.
    last_id: Ulid,
}

/// One ingest's outcome before its sync: what to answer, the records to
/// journal, and the dedupe keys to take back if the sync fails.
pub(crate) struct Written {
    pub(crate) out: Vec<Ingested>,
    pub(crate) frames: Frames,
    pub(crate) last_id: Option<String>,
    pub(crate) keys: Vec<(String, String)>,
}

impl Ingest {
    /// State after the last event stored before, `last`.
    pub(crate) fn new(last: &str) -> Self {
        Self {
            index: DedupeIndex::default(),
            widest_window_ms: 0,
            last_id: last
                .strip_prefix("evt_")
                .and_then(|u| Ulid::from_string(u).ok())
                .unwrap_or(Ulid::nil()),
        }
    }

    /// An id greater than every id before it, even if the clock went back.
    fn next_id(&mut self) -> Ulid {
        let now = Ulid::new();
        self.last_id = if now > self.last_id {
            now
        } else {
            self.last_id
                .increment()
                .unwrap_or_else(|| Ulid::from_parts(self.last_id.timestamp_ms() + 1, 0))
        };
        self.last_id
    }

    /// Makes the dedupe index hold every event of the last `window_ms`,
    /// reading back from the store what it does not hold yet; returns how
    /// many events it read.
    pub(crate) fn cover_window(
        &mut self,
        window_ms: u64,
        events: &sled::Tree,
    ) -> Result<usize, StoreError> {
        self.widest_window_ms = self.widest_window_ms.max(window_ms);
        let now = fieldhook_core::time::now_ms();
        let Some(since) = self.index.needs_events_since(now, window_ms) else {
            return Ok(0);
        };
        let from = key(EVENT, fieldhook_core::event::event_id_at(since).as_bytes());
        let to = match self.index.covered_from() {
            Some(covered) => key(
                EVENT,
                fieldhook_core::event::event_id_at(covered).as_bytes(),
            ),
            None => vec![EVENT + 1],
        };
        let mut found = Vec::new();
        for item in events.range(from..to) {
            let (k, v) = item?;
            let r = DedupeFields::decode(&v).map_err(|message| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k[1..]).into_owned(),
                message: format!("cannot rebuild the dedupe index: {message}"),
            })?;
            if let Some(dk) = r.dedupe_key {
                found.push(Stored::new(r.source, dk, r.id, r.received_at_ms));
            }
        }
        let read = found.len();
        self.index.backfill(since, found);
        Ok(read)
    }

    /// Checks, numbers and writes `events` into sled (written behind: the
    /// journal records returned are what makes them durable). Duplicates,
    /// of stored events or of another in the same call, are answered with
    /// the earlier id.
    pub(crate) fn write(
        &mut self,
        events: Vec<Prepared>,
        window_ms: u64,
        tree: &sled::Tree,
    ) -> Result<Written, StoreError> {
        self.cover_window(window_ms, tree)?;
        let mut written = Written {
            out: Vec::with_capacity(events.len()),
            frames: Frames::default(),
            last_id: None,
            keys: Vec::new(),
        };
        for event in events {
            if let Some(dk) = &event.dedupe_key
                && let Some(id) =
                    self.index
                        .duplicate_of(&event.source, dk, event.received_at_ms, window_ms)
            {
                written.out.push(Ingested::Duplicate(id.to_owned()));
                continue;
            }
            let ulid = self.next_id();
            let id = event_id(ulid);
            let record = event.record.number(ulid);
            tree.insert(key(EVENT, id.as_bytes()), record.as_slice())?;
            if let Some(dk) = &event.dedupe_key {
                self.index
                    .insert(&event.source, dk, &id, event.received_at_ms);
                written.keys.push((event.source.clone(), dk.clone()));
            }
            written.frames.push(&Change::Event(&id, &record));
            written.last_id = Some(id.clone());
            written.out.push(Ingested::Stored(id));
        }
        let now = fieldhook_core::time::now_ms();
        self.index.expire(now.saturating_sub(self.widest_window_ms));
        Ok(written)
    }

    /// The journal did not take these events: forget their dedupe keys, so
    /// the vendor's retry is stored rather than answered as a duplicate.
    pub(crate) fn forget(&mut self, keys: &[(String, String)]) {
        for (source, key) in keys {
            self.index.remove(source, key);
        }
    }
}
