//! Storing new events: dedupe, ids, and the order they are written in.
//!
//! One lock covers the dedupe check, id assignment, the sled inserts and
//! the journal append of every event, so ids increase in the order events
//! are journaled (an event is waiting for fan-out exactly when its id is
//! past the fan-out cursor) and two requests with the same dedupe key
//! cannot both be stored. The caller then waits for the journal's next
//! sync, which every request waiting at that moment shares.

use ulid::Ulid;

use fieldhook_core::event::event_id;

use super::dedupe::{DedupeIndex, Fingerprint, fingerprint};
use super::record::Unnumbered;
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
    pub(super) index: DedupeIndex,
    /// The widest dedupe window asked for: entries older are overwritten.
    widest_window_ms: u64,
    /// The last id assigned; the next is greater.
    last_id: Ulid,
}

/// One ingest's outcome before its sync: what to answer, the records to
/// journal, and the dedupe entries to take back if the sync fails
/// (`(entry, event id)`).
pub(crate) struct Written {
    pub(crate) out: Vec<Ingested>,
    pub(crate) frames: Frames,
    pub(crate) last_id: Option<String>,
    pub(crate) keys: Vec<(Fingerprint, Ulid)>,
}

impl Ingest {
    /// State after the last event stored before, `last`.
    pub(crate) fn new(index: DedupeIndex, last: &str) -> Self {
        Self {
            index,
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
        self.widest_window_ms = self.widest_window_ms.max(window_ms);
        let keep_since = fieldhook_core::time::now_ms().saturating_sub(self.widest_window_ms);
        let mut written = Written {
            out: Vec::with_capacity(events.len()),
            frames: Frames::default(),
            last_id: None,
            keys: Vec::new(),
        };
        for event in events {
            let fp = event
                .dedupe_key
                .as_deref()
                .map(|dk| fingerprint(&event.source, dk));
            // A duplicate: received less than `window_ms` after the first.
            let since = event
                .received_at_ms
                .saturating_add(1)
                .saturating_sub(window_ms);
            if let Some(fp) = &fp
                && let Some(first) = self.index.lookup(fp, since)?
            {
                written.out.push(Ingested::Duplicate(event_id(first)));
                continue;
            }
            let ulid = self.next_id();
            let id = event_id(ulid);
            let record = event.record.number(ulid);
            tree.insert(key(EVENT, id.as_bytes()), record.as_slice())?;
            if let Some(fp) = fp {
                self.index.insert(&fp, ulid, keep_since)?;
                written.keys.push((fp, ulid));
            }
            written.frames.push(&Change::Event(&id, &record));
            written.last_id = Some(id.clone());
            written.out.push(Ingested::Stored(id));
        }
        Ok(written)
    }

    /// The journal did not take these events: forget their dedupe entries,
    /// so the vendor's retry is stored rather than answered as a duplicate.
    pub(crate) fn forget(&mut self, keys: &[(Fingerprint, Ulid)]) {
        for (fp, ulid) in keys {
            // Best effort: a failing disk fails the retry's own write too.
            let _ = self.index.forget(fp, *ulid);
        }
    }
}
