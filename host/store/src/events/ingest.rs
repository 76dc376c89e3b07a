//! Storing new events: dedupe, ids, and the order they are written in.
//!
//! One lock covers the dedupe check, id assignment, the sled inserts and
//! the journal append of every event, so ids increase in the order events
//! are journaled (an event is waiting for fan-out exactly when its id is
//! past the fan-out cursor) and two requests with the same dedupe key
//! cannot both be stored. The caller then waits for the journal's next
//! sync, which every request waiting at that moment shares.

use std::sync::Arc;

use ulid::Ulid;

use fieldhook_core::event::event_id;

use super::dedupe::{DedupeIndex, Fingerprint, fingerprint};
use super::record::{Unnumbered, UnnumberedSharing, encode_message};
use super::{EVENT, Ingested, MESSAGE, NewEvent, StoreError, key};
use crate::journal::{Change, Frames};

/// Events ready to write, their records encoded by the caller, outside
/// the lock, so the locked part only checks, numbers and writes.
pub(crate) enum Prepared {
    /// An event alone in its message: the record holds headers and body.
    Alone(Candidate<Unnumbered>),
    /// Events split from one message, which is stored once (encoded here)
    /// under the first of them that is stored.
    Split {
        message: Vec<u8>,
        events: Vec<Candidate<UnnumberedSharing>>,
    },
}

/// One event offered to the store, with its record encoded as `R`.
pub(crate) struct Candidate<R> {
    pub(crate) record: R,
    pub(crate) source: String,
    pub(crate) dedupe_key: Option<String>,
    pub(crate) received_at_ms: u64,
}

impl<R> Candidate<R> {
    fn new(event: NewEvent, record: R) -> Self {
        Self {
            record,
            source: event.source,
            dedupe_key: event.dedupe_key,
            received_at_ms: event.received_at_ms,
        }
    }
}

impl Prepared {
    /// Encodes `events`; consecutive events that hold the same message
    /// (the same `Arc`) share one stored copy of it.
    pub(crate) fn all(events: Vec<NewEvent>) -> Vec<Prepared> {
        use super::record::Encode as _;
        let mut runs: Vec<Vec<NewEvent>> = Vec::new();
        for event in events {
            match runs.last_mut() {
                Some(run)
                    if run
                        .first()
                        .is_some_and(|f| Arc::ptr_eq(&f.message, &event.message)) =>
                {
                    run.push(event)
                }
                _ => runs.push(vec![event]),
            }
        }
        runs.into_iter()
            .filter_map(|mut run| {
                if run.len() == 1 {
                    let event = run.pop()?;
                    let record = event.encode_unnumbered();
                    return Some(Prepared::Alone(Candidate::new(event, record)));
                }
                let message = encode_message(&run.first()?.message);
                let events = run
                    .into_iter()
                    .map(|event| {
                        let record = event.encode_sharing();
                        Candidate::new(event, record)
                    })
                    .collect();
                Some(Prepared::Split { message, events })
            })
            .collect()
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
        match self.write_into(events, window_ms, keep_since, tree, &mut written) {
            Ok(()) => Ok(written),
            Err(e) => {
                // Nothing is journaled: the vendor's retry must not be
                // answered as a duplicate of what was not stored.
                self.forget(&written.keys);
                Err(e)
            }
        }
    }

    fn write_into(
        &mut self,
        events: Vec<Prepared>,
        window_ms: u64,
        keep_since: u64,
        tree: &sled::Tree,
        written: &mut Written,
    ) -> Result<(), StoreError> {
        for prepared in events {
            match prepared {
                Prepared::Alone(event) => {
                    if let Some(ulid) = self.admit(&event, window_ms, keep_since, written)? {
                        let record = event.record.number(ulid);
                        store_event(tree, written, ulid, &record)?;
                    }
                }
                Prepared::Split { message, events } => {
                    let mut stored = Vec::with_capacity(events.len());
                    for event in events {
                        if let Some(ulid) = self.admit(&event, window_ms, keep_since, written)? {
                            stored.push((ulid, event.record));
                        }
                    }
                    let (Some(&(first, _)), Some(&(last, _))) = (stored.first(), stored.last())
                    else {
                        // Every event of the message was a duplicate.
                        continue;
                    };
                    // The message before its events, in sled and in the
                    // journal, so no event ever refers to a message that
                    // is not there.
                    let first_id = event_id(first);
                    tree.insert(key(MESSAGE, first_id.as_bytes()), message.as_slice())?;
                    written.frames.push(&Change::Message(&first_id, &message));
                    for (ulid, record) in stored {
                        let record = record.number(ulid, first, last);
                        store_event(tree, written, ulid, &record)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks one event against the dedupe index: `None` for a duplicate
    /// (answered with the earlier id), else the id it is stored under.
    fn admit<R>(
        &mut self,
        event: &Candidate<R>,
        window_ms: u64,
        keep_since: u64,
        written: &mut Written,
    ) -> Result<Option<Ulid>, StoreError> {
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
            return Ok(None);
        }
        let ulid = self.next_id();
        if let Some(fp) = fp {
            self.index.insert(&fp, ulid, keep_since)?;
            written.keys.push((fp, ulid));
        }
        written.out.push(Ingested::Stored(event_id(ulid)));
        Ok(Some(ulid))
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

/// Writes one numbered event into sled and frames it for the journal.
fn store_event(
    tree: &sled::Tree,
    written: &mut Written,
    ulid: Ulid,
    record: &[u8],
) -> Result<(), StoreError> {
    let id = event_id(ulid);
    tree.insert(key(EVENT, id.as_bytes()), record)?;
    written.frames.push(&Change::Event(&id, record));
    written.last_id = Some(id);
    Ok(())
}
