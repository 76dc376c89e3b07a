//! Group commit: many writers, one batch, one fsync.
//!
//! Every ingest goes to one committer thread. It takes all requests queued
//! so far, checks their dedupe keys, numbers their events, writes them as a
//! single atomic sled batch, makes them durable once (sled flush, then
//! fdatasync) and answers them all. Requests that arrive during a flush
//! make up the next group, so under load each fsync covers as many requests
//! as there are clients waiting.
//!
//! A single writer for new events is what makes this fast: per-request sled
//! transactions serialise against each other and against the flush, so
//! groups stayed at about three writes. It also makes the rest simple:
//! - the dedupe check needs no transaction, and its index can live in the
//!   committer's memory ([`super::dedupe`]);
//! - ids are assigned here in increasing order, so an event is waiting for
//!   fan-out exactly when its id is past the fan-out cursor, and storing it
//!   takes one sled insert.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};
use ulid::Ulid;

use super::dedupe::{DedupeIndex, Stored};
use fieldhook_core::event::event_id;

use super::record::{DedupeFields, Encode, Unnumbered};
use super::{EVENT, Ingested, NewEvent, StoreError, key};

/// An event ready to write: record encoded by the caller, so the one
/// committer thread only checks dedupe keys, numbers and writes.
struct Prepared {
    record: Unnumbered,
    source: String,
    dedupe_key: Option<String>,
    received_at_ms: u64,
}

impl Prepared {
    fn new(event: NewEvent) -> Self {
        Self {
            record: event.encode_unnumbered(),
            source: event.source,
            dedupe_key: event.dedupe_key,
            received_at_ms: event.received_at_ms,
        }
    }
}

/// Requests in one group at most: bounds the latency a large backlog adds
/// to the requests at its front.
const MAX_GROUP: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Request {
    /// Store these events (skipping duplicates), then answer once durable.
    Ingest {
        events: Vec<Prepared>,
        window_ms: u64,
        reply: Reply<Vec<Ingested>>,
    },
    /// Answer once everything written before is durable.
    Sync(Reply<()>),
    /// Read back the events of this dedupe window now, rather than at the
    /// first ingest; answers how many were read.
    LoadDedupe { window_ms: u64, reply: Reply<usize> },
}

/// Handle to the committer thread.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::UnboundedSender<Request>,
    stats: Arc<Counters>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    writes: AtomicU64,
    slowest_write_us: AtomicU64,
    slowest_sync_us: AtomicU64,
}

/// How well writes were grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Flushes (fsyncs) performed.
    pub flushes: u64,
    /// Requests (ingests and syncs) answered.
    pub writes: u64,
    /// The longest any group took to write (dedupe checks, sled batch), µs.
    pub slowest_write_us: u64,
    /// The longest any group took to become durable (sled flush and
    /// fdatasync), µs. Every request of the group waited that long.
    pub slowest_sync_us: u64,
}

fn stopped() -> StoreError {
    StoreError::Flush("the store's committer thread has stopped".into())
}

impl GroupCommit {
    /// Starts the committer thread for `events` in `db`, whose log file is
    /// `log`. It publishes the id of the last durable event in
    /// `stored_through`, which on entry holds the last event stored before.
    pub fn start(
        db: sled::Db,
        events: sled::Tree,
        log: File,
        stored_through: Arc<RwLock<String>>,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Counters::default());
        let last_id = stored_through
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .strip_prefix("evt_")
            .and_then(|u| Ulid::from_string(u).ok())
            .unwrap_or(Ulid::nil());
        let committer = Committer {
            db,
            log,
            events,
            index: DedupeIndex::default(),
            widest_window_ms: 0,
            last_id,
            published_id: last_id,
            stored_through,
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("fieldhook-commit".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| StoreError::Flush(format!("cannot start the committer thread: {e}")))?;
        Ok(Self {
            tx,
            stats,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Drops this handle; when it was the last one, waits for the committer
    /// to answer what is queued and stop (it holds the database open).
    pub async fn close(self) {
        let GroupCommit { tx, thread, .. } = self;
        drop(tx);
        if let Some(thread) = Arc::into_inner(thread) {
            let handle = thread.into_inner().unwrap_or_else(|p| p.into_inner());
            if let Some(handle) = handle {
                let _ = tokio::task::spawn_blocking(move || handle.join()).await;
            }
        }
    }

    /// Stores `events` and returns once they are durable.
    pub async fn ingest(
        &self,
        events: Vec<NewEvent>,
        window_ms: u64,
    ) -> Result<Vec<Ingested>, StoreError> {
        let events = events.into_iter().map(Prepared::new).collect();
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Ingest {
                events,
                window_ms,
                reply,
            })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?.map_err(StoreError::Flush)
    }

    /// Returns once everything inserted before this call is durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Sync(reply)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?.map_err(StoreError::Flush)
    }

    /// Fills the dedupe index for `window_ms` from the stored events;
    /// returns how many it read.
    pub async fn load_dedupe(&self, window_ms: u64) -> Result<usize, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::LoadDedupe { window_ms, reply })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?.map_err(StoreError::Flush)
    }

    /// Counters since start.
    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            flushes: self.stats.flushes.load(Ordering::Relaxed),
            writes: self.stats.writes.load(Ordering::Relaxed),
            slowest_write_us: self.stats.slowest_write_us.load(Ordering::Relaxed),
            slowest_sync_us: self.stats.slowest_sync_us.load(Ordering::Relaxed),
        }
    }
}

/// One ingest request's outcome, waiting for the group's flush.
struct Pending {
    reply: Reply<Vec<Ingested>>,
    out: Result<Vec<Ingested>, String>,
}

/// The committer thread's state.
struct Committer {
    db: sled::Db,
    log: File,
    events: sled::Tree,
    index: DedupeIndex,
    /// The widest dedupe window asked for: the index keeps that much.
    widest_window_ms: u64,
    /// The last id assigned; the next is greater.
    last_id: Ulid,
    /// The id last published in `stored_through`.
    published_id: Ulid,
    /// The last event made durable, for fan-out.
    stored_through: Arc<RwLock<String>>,
    stats: Arc<Counters>,
}

impl Committer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let mut group = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(more) => group.push(more),
                    Err(_) => break,
                }
            }
            let count = group.len() as u64;
            let started = std::time::Instant::now();
            let (pending, syncs) = self.write_group(group.drain(..));
            let written = std::time::Instant::now();
            let flushed = durable(&self.db, &self.log);
            let micros = |d: std::time::Duration| d.as_micros().try_into().unwrap_or(u64::MAX);
            let stats = &self.stats;
            stats
                .slowest_write_us
                .fetch_max(micros(written - started), Ordering::Relaxed);
            stats
                .slowest_sync_us
                .fetch_max(micros(written.elapsed()), Ordering::Relaxed);
            match &flushed {
                // Also after a group that stored nothing: it may have made
                // durable what a failed flush left behind.
                Ok(()) if self.last_id != self.published_id => {
                    *self
                        .stored_through
                        .write()
                        .unwrap_or_else(|p| p.into_inner()) = event_id(self.last_id);
                    self.published_id = self.last_id;
                }
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, requests = count, "store flush failed"),
            }
            self.stats.flushes.fetch_add(1, Ordering::Relaxed);
            self.stats.writes.fetch_add(count, Ordering::Relaxed);
            // A requester that gave up (client disconnected) is fine to skip.
            for p in pending {
                let out = match (&flushed, p.out) {
                    (Ok(()), out) => out,
                    (Err(e), _) => Err(e.clone()),
                };
                let _ = p.reply.send(out);
            }
            for s in syncs {
                let _ = s.send(flushed.clone());
            }
            let now = fieldhook_core::time::now_ms();
            self.index.expire(now.saturating_sub(self.widest_window_ms));
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
    fn cover_window(&mut self, window_ms: u64) -> Result<usize, String> {
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
        for item in self.events.range(from..to) {
            let (k, v) = item.map_err(|e| e.to_string())?;
            let r = DedupeFields::decode(&v).map_err(|e| {
                format!(
                    "cannot rebuild the dedupe index: event `{}` does not decode: {e}",
                    String::from_utf8_lossy(&k[1..])
                )
            })?;
            if let Some(dk) = r.dedupe_key {
                found.push(Stored::new(r.source, dk, r.id, r.received_at_ms));
            }
        }
        let read = found.len();
        self.index.backfill(since, found);
        Ok(read)
    }

    /// Writes every new event of the group, in id order. Duplicates (of
    /// stored events or of another event in the same group) are answered
    /// with the earlier id.
    ///
    /// Plain inserts, not a sled batch: sled 0.34 writes out and syncs a
    /// log buffer of its own for every batch, three disk writes per group
    /// where the flush that follows needs one. Nothing is answered before
    /// that flush, and sled recovers a prefix of its writes, so a crash
    /// keeps some unanswered events of the group (stored, fanned out, never
    /// acknowledged: the vendor retries, and the dedupe key catches that)
    /// and never a gap.
    fn write_group(
        &mut self,
        group: impl Iterator<Item = Request>,
    ) -> (Vec<Pending>, Vec<Reply<()>>) {
        let mut records = Vec::new();
        // Dedupe keys of this group: in the index only once they are in.
        let mut staged = DedupeIndex::default();
        let mut pending = Vec::new();
        let mut syncs = Vec::new();
        for request in group {
            let (new_events, window_ms, reply) = match request {
                Request::Sync(reply) => {
                    syncs.push(reply);
                    continue;
                }
                Request::LoadDedupe { window_ms, reply } => {
                    let _ = reply.send(self.cover_window(window_ms));
                    continue;
                }
                Request::Ingest {
                    events,
                    window_ms,
                    reply,
                } => (events, window_ms, reply),
            };
            if let Err(e) = self.cover_window(window_ms) {
                tracing::error!(error = %e, "dedupe check failed");
                pending.push(Pending { reply, out: Err(e) });
                continue;
            }
            let mut out = Vec::with_capacity(new_events.len());
            for event in new_events {
                if let Some(dk) = &event.dedupe_key {
                    let at = event.received_at_ms;
                    let earlier = staged
                        .duplicate_of(&event.source, dk, at, window_ms)
                        .or_else(|| self.index.duplicate_of(&event.source, dk, at, window_ms));
                    if let Some(id) = earlier {
                        out.push(Ingested::Duplicate(id.to_owned()));
                        continue;
                    }
                }
                let ulid = self.next_id();
                let id = event_id(ulid);
                records.push((key(EVENT, id.as_bytes()), event.record.number(ulid)));
                if let Some(dk) = &event.dedupe_key {
                    staged.insert(&event.source, dk, &id, event.received_at_ms);
                }
                out.push(Ingested::Stored(id));
            }
            pending.push(Pending {
                reply,
                out: Ok(out),
            });
        }
        let written = records
            .into_iter()
            .try_for_each(|(k, v)| self.events.insert(k, v).map(|_| ()));
        match written {
            Ok(()) => self.index.absorb(staged),
            Err(e) => {
                let e = e.to_string();
                tracing::error!(error = %e, "store write failed: the group is refused (events written before the failure may still run, once; the vendor retries the rest)");
                for p in &mut pending {
                    p.out = Err(e.clone());
                }
            }
        }
        (pending, syncs)
    }
}

/// Makes everything written so far durable. sled's flush writes out its
/// buffers but ends in sync_file_range, which neither empties the disk's
/// write cache nor records the log's new length, so an acknowledged event
/// could be lost to a power cut; the fdatasync does both. Syncing once per
/// group also leaves sled's 200 ms background fsync little to do: when it
/// found 200 ms of unsynced log, the group flushing beside it stalled for
/// 10-20 ms.
fn durable(db: &sled::Db, log: &File) -> Result<(), String> {
    db.flush().map_err(|e| format!("sled flush failed: {e}"))?;
    log.sync_data()
        .map_err(|e| format!("fdatasync of the store's log failed: {e}"))
}
