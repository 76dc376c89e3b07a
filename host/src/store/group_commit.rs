//! Group commit: many writers, one batch, one fsync.
//!
//! Every ingest goes to one committer thread. It takes all requests queued
//! so far, checks their dedupe keys, writes all their events as a single
//! atomic sled batch, makes them durable once (sled flush, then fdatasync)
//! and answers them all. Requests that arrive during a flush make up the
//! next group, so under load each fsync covers as many requests as there
//! are clients waiting.
//!
//! A single writer for new events is what makes this fast: per-request sled
//! transactions serialise against each other and against the flush, so
//! groups stayed at about three writes. It also makes the dedupe check
//! race-free without a transaction: nobody else inserts dedupe entries.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{Ingested, NewEvent, StoreError, decode_dedupe, dedupe_key, encode_dedupe, key};

/// An event ready to write: id assigned and record encoded by the caller,
/// so the one committer thread only checks dedupe keys and writes.
struct Prepared {
    id: String,
    record: Vec<u8>,
    /// The dedupe entry's key in the tree, when the event has one.
    dedupe: Option<Vec<u8>>,
    received_at_ms: u64,
}

impl Prepared {
    fn new(event: NewEvent) -> Self {
        let id = format!("evt_{}", ulid::Ulid::new());
        Self {
            record: event.encode(&id),
            dedupe: event
                .dedupe_key
                .as_deref()
                .map(|dk| dedupe_key(&event.source, dk)),
            received_at_ms: event.received_at_ms,
            id,
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
}

/// How well writes were grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Flushes (fsyncs) performed.
    pub flushes: u64,
    /// Requests (ingests and syncs) answered.
    pub writes: u64,
}

fn stopped() -> StoreError {
    StoreError::Flush("the store's committer thread has stopped".into())
}

impl GroupCommit {
    /// Starts the committer thread for `events` in `db`, whose log file is
    /// `log`.
    pub fn start(db: sled::Db, events: sled::Tree, log: File) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Counters::default());
        let counters = stats.clone();
        let thread = std::thread::Builder::new()
            .name("fieldhook-commit".into())
            .spawn(move || committer(db, log, events, rx, counters))
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

    /// Counters since start.
    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            flushes: self.stats.flushes.load(Ordering::Relaxed),
            writes: self.stats.writes.load(Ordering::Relaxed),
        }
    }
}

/// One ingest request's outcome, waiting for the group's flush.
struct Pending {
    reply: Reply<Vec<Ingested>>,
    out: Result<Vec<Ingested>, String>,
}

fn committer(
    db: sled::Db,
    log: File,
    events: sled::Tree,
    mut rx: mpsc::UnboundedReceiver<Request>,
    stats: Arc<Counters>,
) {
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
        let (pending, syncs) = write_group(&events, group.drain(..));
        let flushed = durable(&db, &log);
        if let Err(e) = &flushed {
            tracing::error!(error = %e, requests = count, "store flush failed");
        }
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats.writes.fetch_add(count, Ordering::Relaxed);
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

/// Writes every event of the group as one atomic batch. Duplicates (of
/// stored events or of another event in the same group) are answered with
/// the earlier id.
fn write_group(
    events: &sled::Tree,
    group: impl Iterator<Item = Request>,
) -> (Vec<Pending>, Vec<Reply<()>>) {
    let mut batch = sled::Batch::default();
    // Dedupe entries written by this group, not yet visible in the tree.
    let mut fresh: HashMap<Vec<u8>, (String, u64)> = HashMap::new();
    let mut pending = Vec::new();
    let mut syncs = Vec::new();
    for request in group {
        let (new_events, window_ms, reply) = match request {
            Request::Sync(reply) => {
                syncs.push(reply);
                continue;
            }
            Request::Ingest {
                events,
                window_ms,
                reply,
            } => (events, window_ms, reply),
        };
        let mut out = Vec::with_capacity(new_events.len());
        let mut failed = None;
        for event in new_events {
            if let Some(k) = event.dedupe {
                let previous = match fresh.get(&k) {
                    Some(p) => Some(p.clone()),
                    None => match events.get(&k) {
                        Ok(v) => v.and_then(|v| decode_dedupe(&v)),
                        Err(e) => {
                            failed = Some(e.to_string());
                            break;
                        }
                    },
                };
                if let Some((prev_id, at)) = previous
                    && event.received_at_ms.saturating_sub(at) < window_ms
                {
                    out.push(Ingested::Duplicate(prev_id));
                    continue;
                }
                batch.insert(k.clone(), encode_dedupe(&event.id, event.received_at_ms));
                fresh.insert(k, (event.id.clone(), event.received_at_ms));
            }
            batch.insert(key(super::EVENT, event.id.as_bytes()), event.record);
            batch.insert(key(super::INBOX, event.id.as_bytes()), &[][..]);
            out.push(Ingested::Stored(event.id));
        }
        // A read error fails this request only; whatever it already added
        // to the batch is stored but unanswered, which a retry dedupes.
        pending.push(Pending {
            reply,
            out: match failed {
                Some(e) => Err(e),
                None => Ok(out),
            },
        });
    }
    if let Err(e) = events.apply_batch(batch) {
        let e = e.to_string();
        tracing::error!(error = %e, "store batch failed: nothing of this group was stored");
        for p in &mut pending {
            p.out = Err(e.clone());
        }
    }
    (pending, syncs)
}
