//! Durable event storage: sled, written behind the store's journal.
//!
//! One tree, `events`:
//!
//! | key                          | value                                  |
//! |------------------------------|----------------------------------------|
//! | `e` + event id               | [`EventRecord`] (postcard), or its fields and a reference to its message |
//! | `m` + event id               | a message split into several events: headers and body, once |
//! | `f`                          | fan-out cursor (stores before the task log kept it) |
//! | `i` + event id               | fan out again (idem)                   |
//! | `d` + source + `\0` + key    | legacy dedupe entry, expires           |
//!
//! Storing an event is one sled insert and one journal record; the request
//! is answered once the journal's next sync (shared by every request
//! waiting) has made it durable ([`crate::journal`]). Event ids increase in
//! the order events are journaled, so the events past the task log's
//! fan-out cursor are the ones waiting for fan-out, and the dedupe index is
//! rebuilt from the events themselves (each carries its dedupe key).
//! Opening replays the journal into sled, so an event sled had not written
//! out before a crash is there again.
//!
//! A message a vendor splits into several events (a ServiceTrade message
//! carries one per changed entity) is stored once, under the id of the
//! first of them; each of its events records the ids of the first and the
//! last ([`record`]). Reading an event puts its message back in; deleting
//! the last event of a message deletes the message.

mod dedupe;
mod ingest;
mod record;
pub mod verify;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use fieldhook_core::event::{EntityRecord, EventRecord, Message, NewEvent, event_id};

use crate::journal::{Change, Frames, Journal, JournalError, Record, Recovered};
use dedupe::DedupeIndex;
use ingest::{Ingest, Prepared};
use record::{Decoded, Span};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// The flush that makes writes durable failed.
    #[error("store flush failed: {0}")]
    Flush(String),
    /// A check could not run (`store verify`).
    #[error("{0}")]
    Check(String),
    /// A stored record could not be decoded.
    #[error("store record `{key}` is corrupt: {message}")]
    Corrupt {
        /// Printable key.
        key: String,
        /// Decoder message.
        message: String,
    },
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The store's format is not one this build reads.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
}

impl StoreError {
    /// Whether another process (a running daemon) holds the store open.
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Sled(sled::Error::Io(e))
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.to_string().contains("could not acquire lock"))
    }
}

/// The leading fields of a stored event ([`EventStore::event_head`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHead {
    /// Event id.
    pub id: String,
    /// Source name.
    pub source: String,
    /// Normalized kind.
    pub kind: String,
    /// Entity, when known.
    pub entity: Option<EntityRecord>,
}

/// What happened to one event offered to [`EventStore::ingest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Stored under this new id.
    Stored(String),
    /// A duplicate of this earlier event (inside the dedupe window).
    Duplicate(String),
}

impl Ingested {
    /// The event id, new or earlier.
    pub fn id(&self) -> &str {
        match self {
            Ingested::Stored(id) | Ingested::Duplicate(id) => id,
        }
    }
}

/// How well writes were grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Journal writes that reached the disk (one fdatasync each).
    pub flushes: u64,
    /// Ingest requests answered.
    pub writes: u64,
    /// The longest any request held the ingest lock (dedupe checks, sled
    /// inserts, journal append), µs.
    pub slowest_write_us: u64,
    /// The longest journal write + fdatasync, µs. Every request it covered
    /// waited that long.
    pub slowest_sync_us: u64,
}

/// How far a bounded read of events went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Examined {
    /// Events read.
    pub count: usize,
    /// The oldest event read, when the read reached its bound before
    /// finding as many as asked for: go on from below it.
    pub stopped_at: Option<String>,
}

/// The store behind the daemon: sled for the data, the journal for
/// durability.
#[derive(Clone)]
pub struct EventStore {
    dir: std::path::PathBuf,
    db: sled::Db,
    events: sled::Tree,
    journal: Arc<Journal>,
    ingest: Arc<Mutex<Ingest>>,
    /// What opening found for the task log to take.
    recovered: Arc<Mutex<Option<Recovered>>>,
    /// The last event made durable: fan-out reads no further, so it never
    /// passes an event whose request is still waiting for its sync.
    stored_through: Arc<RwLock<String>>,
    /// sled's log file, fdatasynced after a sled flush (sled's own flush
    /// ends in sync_file_range, which neither empties the disk's write
    /// cache nor records the file's length).
    log: Arc<std::fs::File>,
    writes: Arc<AtomicU64>,
    slowest_write_us: Arc<AtomicU64>,
    health: Arc<crate::health::WriteHealth>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore").finish_non_exhaustive()
    }
}

const EVENT: u8 = b'e';
const MESSAGE: u8 = b'm';
const DEDUPE: u8 = b'd';
const INBOX: u8 = b'i';
/// The legacy fan-out cursor's key.
const CURSOR: &[u8] = b"f";

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

/// The file sled 0.34 keeps its log in, inside the database directory.
const SLED_LOG_FILE: &str = "db";

impl EventStore {
    /// Opens (or creates) the store in `dir`: sled, then the journal
    /// (`dir/journal/`), whose events are written into sled again.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // Before sled reads a byte: a newer layout is refused, not guessed at.
        crate::format::check(dir)?;
        let db = sled::Config::new()
            .path(dir)
            // Written behind the journal: sled's own background flush (and
            // the segment cleaning it does) only bounds how much opening
            // replays.
            .flush_every_ms(Some(1000))
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let events = db.open_tree("events")?;
        let log_path = dir.join(SLED_LOG_FILE);
        let log = std::fs::File::open(&log_path).map_err(|e| {
            StoreError::Flush(format!(
                "cannot open {} to sync it: {e}",
                log_path.display()
            ))
        })?;
        let journal_dir = dir.join("journal");
        // A store from before the journal kept the fan-out state in the
        // events tree; a new store has none. Either way, it starts here.
        let fresh = !journal_dir.exists();
        let (journal, mut recovered) = Journal::open(&journal_dir)?;
        // Events the journal has and sled may have lost; the rest is the
        // task log's, taken when it opens.
        let mut index = match DedupeIndex::open(dir)? {
            Some(index) => index,
            None => {
                let started = std::time::Instant::now();
                let (index, indexed) = dedupe::build(dir, &events)?;
                if indexed > 0 {
                    tracing::info!(
                        events = indexed,
                        ms = started.elapsed().as_millis() as u64,
                        "dedupe index built from the stored events"
                    );
                }
                index
            }
        };
        let mut replayed = Ok(());
        // A message is written back with the first of its events: one
        // whose events a crash cut from the journal's end would belong to
        // no event.
        let mut messages: std::collections::HashMap<String, Vec<u8>> = Default::default();
        recovered.records.retain_mut(|r| match r {
            Record::Message(id, record) => {
                messages.insert(std::mem::take(id), std::mem::take(record));
                false
            }
            Record::Event(id, record) => {
                if replayed.is_ok() {
                    replayed = replay_event(&events, &mut index, &mut messages, id, record);
                }
                false
            }
            _ => true,
        });
        replayed?;
        if fresh {
            // Before the cursor, every waiting event had an inbox entry and
            // all others were done: the last stored event is the cursor.
            let cursor = match events.get(CURSOR)? {
                Some(c) => String::from_utf8_lossy(&c).into_owned(),
                None => last_event_id(&events)?,
            };
            let mut replays = Vec::new();
            for k in events.scan_prefix([INBOX]).keys() {
                replays.push(String::from_utf8_lossy(&k?[1..]).into_owned());
            }
            // Journaled at once: a crash before the first checkpoint must
            // not lose it.
            let mut state = Frames::default();
            for id in &replays {
                state.push(&Change::Requeue(id));
            }
            state.push(&Change::FannedOut(Some(&cursor), &[]));
            journal.append(&state);
            recovered.snapshot.fanned_out = cursor;
            recovered.snapshot.replays = replays;
        }
        let last = last_event_id(&events)?;
        // Older layouts are converted as each part opens (the task log's
        // on its first checkpoint); what is written from now on is current.
        crate::format::mark_current(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            db,
            events,
            journal: Arc::new(journal),
            ingest: Arc::new(Mutex::new(Ingest::new(index, &last))),
            recovered: Arc::new(Mutex::new(Some(recovered))),
            stored_through: Arc::new(RwLock::new(last)),
            log: Arc::new(log),
            writes: Arc::default(),
            slowest_write_us: Arc::default(),
            health: Arc::default(),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The underlying database, for this crate's other trees (queue, kv,
    /// tokens).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The journal, for the task log.
    /// The store's directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// What opening recovered for the task log (once).
    pub(crate) fn take_recovered(&self) -> Option<Recovered> {
        self.recovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn lock_ingest(&self) -> std::sync::MutexGuard<'_, Ingest> {
        self.ingest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until everything journaled so far is on disk. Concurrent
    /// callers share one fdatasync.
    pub async fn sync(&self) -> Result<(), StoreError> {
        Ok(self.journal.sync().await?)
    }

    /// Makes sled itself durable: its buffers flushed and its log synced.
    /// For what is not journaled (rotated tokens) and before a checkpoint
    /// lets older journal files go.
    pub async fn sync_all(&self) -> Result<(), StoreError> {
        self.sync().await?;
        let db = self.db.clone();
        let log = self.log.clone();
        let ingest = self.ingest.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            ingest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .index
                .sync()?;
            db.flush()?;
            log.sync_data()
                .map_err(|e| StoreError::Flush(format!("fdatasync of sled's log failed: {e}")))
        })
        .await
        .map_err(|e| StoreError::Flush(format!("the flush task failed: {e}")))?
    }

    /// Syncs everything, then releases this handle. The last handle also
    /// closes the journal; sled lets go of the directory's lock when its
    /// flusher thread next wakes (another process can open it as soon as
    /// this one exits).
    pub async fn close(self) -> Result<(), StoreError> {
        self.sync_all().await?;
        let EventStore { journal, .. } = self;
        if let Some(journal) = Arc::into_inner(journal) {
            journal.close();
        }
        Ok(())
    }

    /// Opens the store in `dir`, waiting while sled still holds it: after
    /// the last handle is dropped, sled's flusher thread lets go of the
    /// database (and its file lock) only at its next wake-up.
    #[cfg(test)]
    pub(crate) async fn reopen(dir: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Self::open(dir) {
                Err(e) if e.is_locked() && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                opened => return opened,
            }
        }
    }

    /// How well writes were grouped, since open.
    pub fn commit_stats(&self) -> GroupCommitStats {
        let (flushes, slowest_sync_us) = self.journal.stats();
        GroupCommitStats {
            flushes,
            writes: self.writes.load(Ordering::Relaxed),
            slowest_write_us: self.slowest_write_us.load(Ordering::Relaxed),
            slowest_sync_us,
        }
    }

    /// Stores events, skipping duplicates seen within `dedupe_window_ms`,
    /// and returns once they are durable.
    pub async fn ingest(
        &self,
        events: Vec<NewEvent>,
        dedupe_window_ms: u64,
    ) -> Result<Vec<Ingested>, StoreError> {
        let prepared = Prepared::all(events);
        let written = {
            let started = std::time::Instant::now();
            let mut ingest = self.lock_ingest();
            let written = ingest
                .write(prepared, dedupe_window_ms, &self.events)
                .inspect_err(|e| self.health.failed(e))?;
            // Appended under the lock: the journal's order is id order.
            self.journal.append(&written.frames);
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.slowest_write_us.fetch_max(took, Ordering::Relaxed);
            written
        };
        self.writes.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.journal.sync().await {
            self.lock_ingest().forget(&written.keys);
            self.health.failed(&e);
            return Err(e.into());
        }
        self.health.succeeded();
        if let Some(id) = written.last_id {
            // Every record journaled before this one is durable too, and
            // ids were assigned in journal order.
            let mut through = self
                .stored_through
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if *through < id {
                *through = id;
            }
        }
        Ok(written.out)
    }

    /// Whether the store can write (the last write succeeded), and if not
    /// since when and why.
    pub fn write_state(&self) -> crate::health::WriteState {
        self.health.snapshot()
    }

    /// The last event made durable.
    pub fn stored_through(&self) -> String {
        self.stored_through
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ids of durable events after `after`, oldest first, at most `limit`:
    /// the events a fan-out at cursor `after` has yet to see.
    pub fn events_after(&self, after: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let through = self.stored_through();
        if through.as_str() <= after {
            return Ok(Vec::new());
        }
        let mut from = key(EVENT, after.as_bytes());
        from.push(0);
        let range = from..=key(EVENT, through.as_bytes());
        let mut ids = Vec::new();
        for item in self.events.range(range).keys().take(limit) {
            ids.push(String::from_utf8_lossy(&item?[1..]).into_owned());
        }
        Ok(ids)
    }

    /// Whether event `id` is stored.
    pub fn contains(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.events.contains_key(key(EVENT, id.as_bytes()))?)
    }

    /// Forgets the legacy fan-out state (cursor and inbox entries) once the
    /// task log has taken it over.
    pub(crate) fn drop_legacy_fan_out(&self) -> Result<(), StoreError> {
        self.events.remove(CURSOR)?;
        for k in self.events.scan_prefix([INBOX]).keys() {
            self.events.remove(k?)?;
        }
        Ok(())
    }

    /// One stored event, with its headers and body.
    pub fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        let Some(bytes) = self.events.get(key(EVENT, id.as_bytes()))? else {
            return Ok(None);
        };
        Ok(Some(match decode(id, &bytes)? {
            Decoded::Whole(record) => record,
            Decoded::Sharing(sharing) => {
                let message = self.message(id, sharing.message_id())?;
                sharing.with_message(message)
            }
        }))
    }

    /// The message event `id` shares, stored under `message_id`.
    fn message(&self, id: &str, message_id: &str) -> Result<Message, StoreError> {
        let Some(bytes) = self.events.get(key(MESSAGE, message_id.as_bytes()))? else {
            return Err(StoreError::Corrupt {
                key: id.to_owned(),
                message: format!(
                    "its message is stored under `{message_id}`, which is missing; `fieldhook store verify` lists every such event"
                ),
            });
        };
        record::decode_message(&bytes).map_err(|message| StoreError::Corrupt {
            key: format!("message {message_id}"),
            message,
        })
    }

    /// The leading fields of one stored event (id, source, kind, entity):
    /// what fan-out needs, without copying headers and body.
    pub fn event_head(&self, id: &str) -> Result<Option<EventHead>, StoreError> {
        let Some(bytes) = self.events.get(key(EVENT, id.as_bytes()))? else {
            return Ok(None);
        };
        let head = record::HeadFields::decode(&bytes).map_err(|message| StoreError::Corrupt {
            key: id.to_owned(),
            message,
        })?;
        Ok(Some(EventHead {
            id: head.id.to_owned(),
            source: head.source.to_owned(),
            kind: head.kind.to_owned(),
            entity: head.entity,
        }))
    }

    /// Number of stored events.
    pub fn event_count(&self) -> usize {
        self.events.scan_prefix([EVENT]).count()
    }

    /// Events in id order (= receive order) after `after`, that pass `keep`,
    /// at most `limit`.
    pub fn events_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&EventRecord) -> bool,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let start = match after {
            Some(a) => {
                let mut k = key(EVENT, a.as_bytes());
                k.push(0);
                k
            }
            None => vec![EVENT],
        };
        self.collect_events(self.events.range(start..), limit, keep)
    }

    /// Events newest first: ids below `before` and not below `since` (both
    /// ids; ids sort by receive time, so these bound a time range), that
    /// pass `keep`, at most `limit`, reading at most `scan` events. The
    /// console pages with it.
    pub fn events_newest_first(
        &self,
        before: Option<&str>,
        since: Option<&str>,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&EventRecord) -> bool,
    ) -> Result<(Vec<EventRecord>, Examined), StoreError> {
        let start = since.map_or_else(|| vec![EVENT], |s| key(EVENT, s.as_bytes()));
        let end = before.map_or_else(|| vec![EVENT + 1], |b| key(EVENT, b.as_bytes()));
        if start >= end {
            return Ok((Vec::new(), Examined::default()));
        }
        let mut count = 0;
        let mut last = None;
        let items = self
            .events
            .range(start..end)
            .rev()
            .take(scan)
            .inspect(|item| {
                count += 1;
                if let Ok((k, _)) = item {
                    last = Some(k.clone());
                }
            });
        let events = self.collect_events(items, limit, keep)?;
        let stopped_at = match last {
            Some(k) if count >= scan && events.len() < limit => {
                Some(String::from_utf8_lossy(&k[1..]).into_owned())
            }
            _ => None,
        };
        Ok((events, Examined { count, stopped_at }))
    }

    fn collect_events(
        &self,
        items: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        limit: usize,
        keep: &dyn Fn(&EventRecord) -> bool,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut out = Vec::new();
        // The events of a split message are listed together: read it once.
        let mut last_message: Option<(String, Message)> = None;
        for item in items {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if k.first() != Some(&EVENT) {
                break;
            }
            let id = String::from_utf8_lossy(&k[1..]);
            let record = match decode(&id, &v)? {
                Decoded::Whole(record) => record,
                Decoded::Sharing(sharing) => {
                    let message = match last_message.take() {
                        Some((at, message)) if at == sharing.message_id() => message,
                        _ => self.message(&id, sharing.message_id())?,
                    };
                    last_message = Some((sharing.message_id().to_owned(), message.clone()));
                    sharing.with_message(message)
                }
            };
            if keep(&record) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Ids of events in `[from_id, to_id)` (optionally of one source), at
    /// most `limit`. Event ids sort by receive time, so this is a time range.
    pub fn event_ids_between(
        &self,
        from_id: &str,
        to_id: &str,
        limit: usize,
        source: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let range = key(EVENT, from_id.as_bytes())..key(EVENT, to_id.as_bytes());
        for item in self.events.range(range) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if let Some(s) = source {
                match record::HeadFields::decode(&v) {
                    Ok(r) if r.source == s => {}
                    _ => continue,
                }
            }
            out.push(String::from_utf8_lossy(&k[1..]).into_owned());
        }
        Ok(out)
    }

    /// Deletes an event (retention; the caller checks it is not waiting
    /// for fan-out), and its message when no other event shares it. False
    /// when it is absent.
    pub fn delete_event(&self, id: &str) -> Result<bool, StoreError> {
        let Some(removed) = self.events.remove(key(EVENT, id.as_bytes()))? else {
            return Ok(false);
        };
        let span = record::span_of(&removed).map_err(|message| StoreError::Corrupt {
            key: id.to_owned(),
            message,
        })?;
        if let Some(span) = span
            && !self.message_in_use(&span)?
        {
            self.events.remove(key(MESSAGE, span.first.as_bytes()))?;
        }
        Ok(true)
    }

    /// Whether an event of `span` that shares its message is still stored.
    /// Only its own span is searched: ids are assigned in order, so the
    /// events of one message lie between its first and last.
    fn message_in_use(&self, span: &Span) -> Result<bool, StoreError> {
        let range = key(EVENT, span.first.as_bytes())..=key(EVENT, span.last.as_bytes());
        for item in self.events.range(range) {
            let (_, v) = item?;
            if record::span_of(&v).is_ok_and(|s| s.is_some_and(|s| s.first == span.first)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Messages stored once for the events split from them.
    pub fn message_count(&self) -> usize {
        self.events.scan_prefix([MESSAGE]).count()
    }

    /// Removes legacy dedupe entries recorded before `before_ms`, at most
    /// `limit`.
    pub fn prune_dedupe(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.events.scan_prefix([DEDUPE]) {
            if removed >= limit {
                break;
            }
            let (k, v) = item?;
            if decode_dedupe(&v).is_none_or(|(_, at)| at < before_ms) {
                // Only if nobody refreshed it meanwhile.
                if self
                    .events
                    .compare_and_swap(&k, Some(v), None as Option<&[u8]>)?
                    .is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Decodes the stored record of event `id`.
fn decode(id: &str, bytes: &[u8]) -> Result<Decoded, StoreError> {
    record::decode(bytes).map_err(|message| StoreError::Corrupt {
        key: id.to_owned(),
        message,
    })
}

/// Writes a journaled event back into sled and the dedupe index; the
/// message it shares, journaled before it, goes first.
fn replay_event(
    events: &sled::Tree,
    index: &mut DedupeIndex,
    messages: &mut std::collections::HashMap<String, Vec<u8>>,
    id: &str,
    record: &[u8],
) -> Result<(), StoreError> {
    if let Ok(Some(span)) = record::span_of(record)
        && let Some(message) = messages.remove(&span.first)
    {
        events.insert(key(MESSAGE, span.first.as_bytes()), message)?;
    }
    events.insert(key(EVENT, id.as_bytes()), record)?;
    index.index_record(record, 0)
}

/// The id of the last event stored ("" when there is none).
fn last_event_id(events: &sled::Tree) -> Result<String, StoreError> {
    Ok(
        match events
            .range(vec![EVENT]..vec![EVENT + 1])
            .keys()
            .next_back()
        {
            Some(k) => String::from_utf8_lossy(&k?[1..]).into_owned(),
            None => String::new(),
        },
    )
}

fn decode_dedupe(v: &[u8]) -> Option<(String, u64)> {
    let (at, id) = v.split_at_checked(8)?;
    let at = u64::from_be_bytes(at.try_into().ok()?);
    Some((String::from_utf8_lossy(id).into_owned(), at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldhook_core::time::now_ms;

    use super::record::Encode as _;

    fn event(source: &str, dedupe: Option<&str>, at: u64) -> NewEvent {
        NewEvent {
            source: source.into(),
            vendor: "hmac".into(),
            kind: "job.completed".into(),
            entity: None,
            occurred_at: None,
            dedupe_key: dedupe.map(Into::into),
            parsed: true,
            received_at_ms: at,
            message: Arc::new(Message {
                headers: vec![("content-type".into(), b"application/json".to_vec())],
                body: br#"{"a":1}"#.to_vec(),
            }),
        }
    }

    #[tokio::test]
    async fn an_ingested_event_reads_back_byte_for_byte_and_is_listed_for_fan_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let out = store.ingest(vec![event("a", None, 1)], 1000).await.unwrap();
        let Ingested::Stored(id) = &out[0] else {
            panic!("{out:?}")
        };
        let back = store.event(id).unwrap().expect("stored");
        assert_eq!(back.body, br#"{"a":1}"#);
        assert_eq!(back.kind, "job.completed");
        assert_eq!(store.events_after("", 10).unwrap(), vec![id.clone()]);
        assert!(store.events_after(id, 10).unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_event_sled_lost_in_a_crash_is_written_again_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = EventStore::open(dir.path()).unwrap();
            let out = store.ingest(vec![event("a", None, 1)], 0).await.unwrap();
            // As if sled had not written it out when the process died.
            store
                .events
                .remove(key(EVENT, out[0].id().as_bytes()))
                .unwrap();
            store.db.flush().unwrap();
            out[0].id().to_owned()
        };
        let store = EventStore::open(dir.path()).unwrap();
        assert_eq!(store.event(&id).unwrap().unwrap().body, br#"{"a":1}"#);
    }

    #[tokio::test]
    async fn a_duplicate_inside_the_window_is_stored_once_and_outside_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let t = now_ms();
        let first = store
            .ingest(vec![event("a", Some("k"), t)], 60_000)
            .await
            .unwrap();
        let dup = store
            .ingest(vec![event("a", Some("k"), t + 400)], 60_000)
            .await
            .unwrap();
        assert_eq!(dup[0], Ingested::Duplicate(first[0].id().to_owned()));
        let other_source = store
            .ingest(vec![event("b", Some("k"), t + 400)], 60_000)
            .await
            .unwrap();
        assert!(matches!(other_source[0], Ingested::Stored(_)));
        // Well past the window: the first event's time is its id's, taken
        // a few ms after `t`.
        let later = store
            .ingest(vec![event("a", Some("k"), t + 61_000)], 60_000)
            .await
            .unwrap();
        assert!(matches!(later[0], Ingested::Stored(_)));
        assert_eq!(store.event_count(), 3);
    }

    #[tokio::test]
    async fn events_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = EventStore::open(dir.path()).unwrap();
            let out = store.ingest(vec![event("a", None, 1)], 0).await.unwrap();
            store.close().await.unwrap();
            out[0].id().to_owned()
        };
        let store = EventStore::reopen(dir.path()).await.unwrap();
        assert!(store.event(&id).unwrap().is_some());
    }

    #[tokio::test]
    async fn concurrent_copies_of_one_delivery_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..50u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .ingest(vec![event("a", Some("same"), now_ms() + i)], 60_000)
                    .await
                    .unwrap()
                    .remove(0)
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let stored: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o, Ingested::Stored(_)))
            .collect();
        assert_eq!(stored.len(), 1, "{outcomes:?}");
        assert!(outcomes.iter().all(|o| o.id() == stored[0].id()));
        assert_eq!(store.event_count(), 1);
    }

    #[tokio::test]
    async fn a_batch_with_a_repeated_key_stores_the_first_copy_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let out = store
            .ingest(
                vec![
                    event("a", Some("k"), now_ms()),
                    event("a", Some("k"), now_ms()),
                ],
                60_000,
            )
            .await
            .unwrap();
        assert!(matches!(out[0], Ingested::Stored(_)));
        assert_eq!(out[1], Ingested::Duplicate(out[0].id().to_owned()));
    }

    #[tokio::test]
    async fn a_duplicate_is_recognised_after_the_store_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = EventStore::open(dir.path()).unwrap();
            let out = store
                .ingest(vec![event("a", Some("k"), now_ms())], 60_000)
                .await
                .unwrap();
            store.close().await.unwrap();
            out[0].id().to_owned()
        };
        let store = EventStore::reopen(dir.path()).await.unwrap();
        let again = store
            .ingest(vec![event("a", Some("k"), now_ms())], 60_000)
            .await
            .unwrap();
        assert_eq!(again[0], Ingested::Duplicate(first));
        assert_eq!(store.event_count(), 1);
    }

    #[tokio::test]
    async fn a_store_without_a_dedupe_index_gets_one_from_its_events_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = EventStore::open(dir.path()).unwrap();
            let out = store
                .ingest(vec![event("a", Some("k"), now_ms())], 60_000)
                .await
                .unwrap();
            store.close().await.unwrap();
            out[0].id().to_owned()
        };
        // As a store from before the index file was (or one whose index
        // was removed).
        std::fs::remove_file(dir.path().join(dedupe::FILE)).unwrap();
        let store = EventStore::reopen(dir.path()).await.unwrap();
        let again = store
            .ingest(vec![event("a", Some("k"), now_ms())], 60_000)
            .await
            .unwrap();
        assert_eq!(again[0], Ingested::Duplicate(first));
    }

    #[tokio::test]
    async fn ids_increase_in_the_order_events_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for i in 0..50 {
            let out = store.ingest(vec![event("a", None, i), event("a", None, i)], 0);
            ids.extend(out.await.unwrap().into_iter().map(|o| o.id().to_owned()));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
    }

    #[tokio::test]
    async fn fan_out_progress_and_replays_survive_reopening() {
        use crate::queue::{Queue, TaskLog};
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = {
            let store = EventStore::open(dir.path()).unwrap();
            let queue = Queue::open(&store).unwrap();
            let out = store
                .ingest((0..4).map(|i| event("a", None, i)).collect(), 0)
                .await
                .unwrap();
            let ids: Vec<_> = out.iter().map(|o| o.id().to_owned()).collect();
            assert_eq!(store.events_after("", 10).unwrap(), ids);
            assert_eq!(store.events_after("", 2).unwrap(), ids[..2]);
            queue.fanned_out(&[], Some(&ids[1]), &[], 0).unwrap();
            queue.requeue(&ids[0]).unwrap();
            drop(queue);
            store.close().await.unwrap();
            ids
        };
        let store = EventStore::reopen(dir.path()).await.unwrap();
        let queue = Queue::open(&store).unwrap();
        let state = queue.fan_out_state();
        assert_eq!(state.replays, [ids[0].clone()], "the replay");
        assert_eq!(
            store.events_after(&state.cursor, 10).unwrap(),
            [ids[2].clone(), ids[3].clone()],
            "then what was never fanned out"
        );
        assert!(queue.waiting_fan_out(&ids[3]));
        assert!(!queue.waiting_fan_out(&ids[1]));
    }

    #[tokio::test]
    async fn a_store_in_the_older_layout_keeps_its_waiting_events_and_dedupe_entries_expire() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Before the fan-out cursor: an inbox entry per waiting event
            // and a dedupe entry per key.
            let db = sled::open(dir.path()).unwrap();
            let events = db.open_tree("events").unwrap();
            for (id, waiting) in [("evt_01A", false), ("evt_01B", true)] {
                let record = event("a", Some(id), 5).encode(id);
                events.insert(key(EVENT, id.as_bytes()), record).unwrap();
                if waiting {
                    events.insert(key(INBOX, id.as_bytes()), &[][..]).unwrap();
                }
                let mut dedupe = key(DEDUPE, b"a\0");
                dedupe.extend_from_slice(id.as_bytes());
                let mut entry = 5u64.to_be_bytes().to_vec();
                entry.extend_from_slice(id.as_bytes());
                events.insert(dedupe, entry).unwrap();
            }
            db.flush().unwrap();
        }
        let store = EventStore::open(dir.path()).unwrap();
        let queue = crate::queue::Queue::open(&store).unwrap();
        use crate::queue::TaskLog as _;
        let state = queue.fan_out_state();
        assert_eq!(state.replays, ["evt_01B"]);
        let later = store.ingest(vec![event("a", None, 6)], 0).await.unwrap();
        assert_eq!(
            store.events_after(&state.cursor, 10).unwrap(),
            [later[0].id()]
        );
        assert!(later[0].id() > "evt_01B");
        assert_eq!(store.prune_dedupe(6, 100).unwrap(), 2);
    }

    #[tokio::test]
    async fn concurrent_ingests_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.ingest(vec![event("a", None, i)], 0).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stats = store.commit_stats();
        assert_eq!(stats.writes, 200);
        assert!(stats.flushes < 200, "{stats:?}: every write flushed alone");
    }

    /// A ServiceTrade message of `items` entity changes, and the events it
    /// is split into, all holding the one message. The body carries a
    /// marker found nowhere else, to count the copies stored.
    fn split_message(items: usize) -> (Vec<u8>, Vec<NewEvent>) {
        let data: Vec<String> = (0..items)
            .map(|i| {
                format!(
                    r#"{{"action":"updated","timestamp":1401833052,"entity":{{"type":"appointment","id":{i},"uri":"https://api.servicetrade.com/api/appointment/{i}"}},"changeset":[{{"field":"status","oldValue":"scheduled","newValue":"completed"}}]}}"#
                )
            })
            .collect();
        let body = format!(
            r#"{{"messageId":"MARKER-7f3e","timestamp":"1401833057","data":[{}]}}"#,
            data.join(",")
        );
        let message = Arc::new(Message {
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: body.clone().into_bytes(),
        });
        let events = (0..items)
            .map(|i| NewEvent {
                source: "st".into(),
                vendor: "servicetrade".into(),
                kind: "appointment.updated".into(),
                entity: Some(EntityRecord {
                    kind: "appointment".into(),
                    id: i.to_string(),
                    url: None,
                }),
                occurred_at: Some("1401833052".into()),
                dedupe_key: Some(format!("MARKER-7f3e/appointment/{i}/updated")),
                parsed: true,
                received_at_ms: now_ms(),
                message: message.clone(),
            })
            .collect();
        (body.into_bytes(), events)
    }

    /// How many times `needle` occurs in `haystack`.
    fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    }

    /// Every byte the store holds for its events: sled's values, and the
    /// journal's files.
    fn stored_bytes(store: &EventStore) -> (Vec<u8>, Vec<u8>) {
        let mut sled = Vec::new();
        for item in store.events.iter() {
            sled.extend_from_slice(&item.unwrap().1);
        }
        let mut journal = Vec::new();
        for entry in std::fs::read_dir(store.dir().join("journal")).unwrap() {
            journal.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        (sled, journal)
    }

    #[tokio::test]
    async fn a_message_split_into_hundreds_of_events_is_stored_once_and_each_reads_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let (body, events) = split_message(400);
        assert!(body.len() > 60_000, "{} bytes", body.len());
        let out = store.ingest(events, 60_000).await.unwrap();
        assert_eq!(out.len(), 400);
        assert!(out.iter().all(|o| matches!(o, Ingested::Stored(_))));

        let (sled, journal) = stored_bytes(&store);
        assert_eq!(
            occurrences(&sled, b"MARKER-7f3e\",\"timestamp"),
            1,
            "sled holds the body once"
        );
        assert_eq!(
            occurrences(&journal, b"MARKER-7f3e\",\"timestamp"),
            1,
            "the journal holds it once"
        );
        // The body once, and a few hundred bytes per event (each was the
        // whole body, 400 x 64 kB, before).
        for (name, bytes) in [("sled", &sled), ("journal", &journal)] {
            assert!(
                bytes.len() < body.len() + 400 * 512,
                "{name} holds {} bytes for a {} byte message",
                bytes.len(),
                body.len()
            );
        }
        assert_eq!(store.message_count(), 1);

        for o in &out {
            let e = store.event(o.id()).unwrap().expect("stored");
            assert_eq!(e.body, body);
            assert_eq!(
                e.headers,
                [("content-type".to_owned(), b"application/json".to_vec())]
            );
            assert_eq!(e.id, o.id());
        }
        let page = store.events_page(None, 1000, &|_| true).unwrap();
        assert_eq!(page.len(), 400);
        assert!(page.iter().all(|e| e.body == body));
    }

    #[tokio::test]
    async fn events_newest_first_pages_backwards_within_a_range_of_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for at in 1..=4 {
            let out = store.ingest(vec![event("a", None, at)], 0).await.unwrap();
            ids.push(out[0].id().to_owned());
        }
        let page = |before: Option<&str>, since: Option<&str>, limit| {
            store
                .events_newest_first(before, since, limit, usize::MAX, &|_| true)
                .unwrap()
                .0
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(page(None, None, 2), [ids[3].as_str(), &ids[2]]);
        assert_eq!(page(Some(&ids[2]), None, 10), [ids[1].as_str(), &ids[0]]);
        assert_eq!(
            page(Some(&ids[3]), Some(&ids[1]), 10),
            [ids[2].as_str(), &ids[1]],
            "`before` is exclusive, `since` inclusive"
        );
        assert!(page(Some(&ids[1]), Some(&ids[3]), 10).is_empty());
        // Reading at most 3 events for a filter nothing passes: it stops at
        // the third newest and says so.
        let (none, examined) = store
            .events_newest_first(None, None, 10, 3, &|_| false)
            .unwrap();
        assert!(none.is_empty());
        assert_eq!(examined.count, 3);
        assert_eq!(examined.stopped_at.as_deref(), Some(ids[1].as_str()));
        let (all, examined) = store
            .events_newest_first(None, None, 3, 3, &|_| true)
            .unwrap();
        assert_eq!(
            (all.len(), examined.stopped_at),
            (3, None),
            "a full page needs no going on"
        );
    }

    #[tokio::test]
    async fn deleting_all_but_one_event_of_a_split_message_keeps_it_and_deleting_the_last_removes_it()
     {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let (body, events) = split_message(5);
        let ids: Vec<String> = store
            .ingest(events, 60_000)
            .await
            .unwrap()
            .iter()
            .map(|o| o.id().to_owned())
            .collect();
        // The first (under whose id the message is stored) goes early,
        // one in the middle stays.
        for id in [&ids[0], &ids[4], &ids[1], &ids[3]] {
            assert!(store.delete_event(id).unwrap());
            assert_eq!(store.message_count(), 1, "kept while {} remains", ids[2]);
        }
        assert_eq!(store.event(&ids[2]).unwrap().unwrap().body, body);
        assert!(store.delete_event(&ids[2]).unwrap());
        assert_eq!(store.message_count(), 0, "the last one takes it along");
        assert_eq!(store.events.iter().count(), 0, "nothing is left");
        assert!(!store.delete_event(&ids[2]).unwrap(), "already gone");
    }

    #[tokio::test]
    async fn duplicates_of_a_split_message_store_nothing_and_a_partly_new_one_stores_the_new_events()
     {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let (_, events) = split_message(3);
        let first = store.ingest(events.clone(), 60_000).await.unwrap();
        let again = store.ingest(events.clone(), 60_000).await.unwrap();
        assert!(again.iter().all(|o| matches!(o, Ingested::Duplicate(_))));
        assert_eq!(store.message_count(), 1);
        // The same message with one more item: only the new one is stored,
        // with its own copy of the message.
        let (body, more) = split_message(4);
        let out = store.ingest(more, 60_000).await.unwrap();
        assert_eq!(
            out.iter().map(Ingested::id).take(3).collect::<Vec<_>>(),
            first.iter().map(Ingested::id).collect::<Vec<_>>()
        );
        assert!(matches!(out[3], Ingested::Stored(_)));
        assert_eq!(store.event(out[3].id()).unwrap().unwrap().body, body);
        assert_eq!(store.message_count(), 2);
    }

    #[tokio::test]
    async fn a_split_message_sled_lost_in_a_crash_is_written_again_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (body, events) = split_message(3);
        let ids: Vec<String> = {
            let store = EventStore::open(dir.path()).unwrap();
            let out = store.ingest(events, 0).await.unwrap();
            // As if sled had written none of it when the process died.
            for k in store.events.iter().keys() {
                store.events.remove(k.unwrap()).unwrap();
            }
            store.db.flush().unwrap();
            out.iter().map(|o| o.id().to_owned()).collect()
        };
        let store = EventStore::open(dir.path()).unwrap();
        for id in &ids {
            assert_eq!(store.event(id).unwrap().unwrap().body, body);
        }
        assert_eq!(store.message_count(), 1);
    }

    #[tokio::test]
    async fn a_message_whose_events_a_crash_cut_from_the_journal_is_not_written_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EventStore::open(dir.path()).unwrap();
            let (_, events) = split_message(3);
            store.ingest(events, 0).await.unwrap();
            for k in store.events.iter().keys() {
                store.events.remove(k.unwrap()).unwrap();
            }
            store.db.flush().unwrap();
        }
        // Cut the journal right after the message's frame: its events
        // were never written (nor answered).
        let journal = std::fs::read_dir(dir.path().join("journal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::metadata(p).unwrap().len() > 8)
            .expect("a journal file with records");
        let bytes = std::fs::read(&journal).unwrap();
        let mut at = 8;
        loop {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let frame = &bytes[at + 8..at + 8 + len];
            at += 8 + len;
            if let Ok(Record::Message(..)) = postcard::from_bytes::<Record>(frame) {
                break;
            }
        }
        std::fs::write(&journal, &bytes[..at]).unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        assert_eq!(store.event_count(), 0);
        assert_eq!(store.message_count(), 0);
    }
    /// An event as every store before shared messages held it (format 1:
    /// headers and body in the record), byte for byte.
    const WHOLE_RECORD: &str = "011e6576745f3031485130303030303030303030303030303030303030304141036863700d686f75736563616c6c2d70726f0d6a6f622e636f6d706c6574656401036a6f62026a31000001026b310180d095ffbc31010c636f6e74656e742d74797065106170706c69636174696f6e2f6a736f6e077b2261223a317d";

    #[tokio::test]
    async fn an_event_stored_before_shared_messages_reads_lists_and_deletes_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let id = "evt_01HQ00000000000000000000AA";
        let bytes: Vec<u8> = (0..WHOLE_RECORD.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&WHOLE_RECORD[i..i + 2], 16).unwrap())
            .collect();
        {
            let store = EventStore::open(dir.path()).unwrap();
            store
                .events
                .insert(key(EVENT, id.as_bytes()), bytes)
                .unwrap();
            store.db.flush().unwrap();
        }
        let report = verify::verify(dir.path()).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let store = EventStore::open(dir.path()).unwrap();
        let e = store.event(id).unwrap().expect("reads");
        assert_eq!(
            (e.source.as_str(), e.kind.as_str(), e.dedupe_key.as_deref()),
            ("hcp", "job.completed", Some("k1"))
        );
        assert_eq!(
            e.headers,
            [("content-type".to_owned(), b"application/json".to_vec())]
        );
        assert_eq!(e.body, br#"{"a":1}"#);
        assert_eq!(
            store.event_head(id).unwrap().expect("head").kind,
            "job.completed"
        );
        assert_eq!(store.events_page(None, 10, &|_| true).unwrap(), [e]);
        assert!(store.delete_event(id).unwrap());
        assert_eq!(store.event_count(), 0);
    }
}
