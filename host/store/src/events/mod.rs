//! Durable event storage in sled.
//!
//! One tree, `events`:
//!
//! | key                          | value                                  |
//! |------------------------------|----------------------------------------|
//! | `e` + event id               | [`EventRecord`] (postcard)             |
//! | `f`                          | fan-out cursor: last event id fanned out |
//! | `i` + event id               | empty: fan out again (replay)          |
//! | `d` + source + `\0` + key    | legacy dedupe entry, expires           |
//!
//! Storing an event is one insert. Event ids increase in the order events
//! are stored, so the events past the fan-out cursor are the ones waiting
//! for fan-out, and the dedupe index is rebuilt from the events themselves
//! (each carries its dedupe key). Stores written before this layout have
//! `i` entries for their waiting events and `d` entries; both still work.
//!
//! Durability comes from [`GroupCommit`]: one committer thread writes the
//! events of all waiting requests as one batch and answers them after one
//! flush.

mod dedupe;
mod group_commit;
mod record;
pub mod verify;

use std::path::Path;
use std::sync::{Arc, RwLock};

pub use fieldhook_core::event::{EntityRecord, EventRecord, NewEvent, event_id};
pub use group_commit::{GroupCommit, GroupCommitStats};

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

/// The sled database behind the daemon.
#[derive(Clone)]
pub struct EventStore {
    db: sled::Db,
    events: sled::Tree,
    commit: GroupCommit,
    /// The last event made durable: fan-out reads no further, so it never
    /// passes an event that is still being written.
    stored_through: Arc<RwLock<String>>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore").finish_non_exhaustive()
    }
}

const EVENT: u8 = b'e';
const DEDUPE: u8 = b'd';
const INBOX: u8 = b'i';
/// The fan-out cursor's key.
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
    /// Opens (or creates) the store in `dir` and starts its committer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Group commit flushes on demand; the background flush only
            // bounds what a crash can lose of non-durable bookkeeping.
            .flush_every_ms(Some(200))
            .open()?;
        let events = db.open_tree("events")?;
        // The committer fdatasyncs this file itself (group_commit::durable
        // says why sled's flush is not enough).
        let log_path = dir.join(SLED_LOG_FILE);
        let log = std::fs::File::open(&log_path).map_err(|e| {
            StoreError::Flush(format!(
                "cannot open {} to sync it: {e}",
                log_path.display()
            ))
        })?;
        let last = last_event_id(&events)?;
        if events.get(CURSOR)?.is_none() {
            // A new store, or one from before the cursor, where every event
            // still waiting has an inbox entry: either way, all stored events
            // are accounted for. The committer's first flush makes this
            // durable before any event stored after it.
            events.insert(CURSOR, last.as_bytes())?;
        }
        let stored_through = Arc::new(RwLock::new(last));
        let commit = GroupCommit::start(db.clone(), events.clone(), log, stored_through.clone())?;
        Ok(Self {
            db,
            events,
            commit,
            stored_through,
        })
    }

    /// The underlying database, for this crate's other trees (queue, kv,
    /// tokens).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Waits until everything written so far is on disk. Concurrent callers
    /// share one flush.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.commit.sync().await
    }

    /// Flushes, then releases this handle. When it is the last handle the
    /// database is closed on return, so the directory can be opened again.
    pub async fn close(self) -> Result<(), StoreError> {
        self.sync().await?;
        let EventStore {
            db, events, commit, ..
        } = self;
        drop(events);
        drop(db);
        commit.close().await;
        Ok(())
    }

    /// Reads the events of the dedupe window back into the dedupe index
    /// now, so the first ingest after a restart does not wait for it;
    /// returns how many events carried a dedupe key.
    pub async fn load_dedupe(&self, window_ms: u64) -> Result<usize, StoreError> {
        self.commit.load_dedupe(window_ms).await
    }

    /// Group-commit counters (flushes, writes covered).
    pub fn commit_stats(&self) -> GroupCommitStats {
        self.commit.stats()
    }

    /// Stores events atomically (all or none), skipping duplicates seen
    /// within `dedupe_window_ms`, and returns once they are durable.
    pub async fn ingest(
        &self,
        events: Vec<NewEvent>,
        dedupe_window_ms: u64,
    ) -> Result<Vec<Ingested>, StoreError> {
        self.commit.ingest(events, dedupe_window_ms).await
    }

    /// One stored event.
    pub fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        match self.events.get(key(EVENT, id.as_bytes()))? {
            None => Ok(None),
            Some(bytes) => {
                record::decode(&bytes)
                    .map(Some)
                    .map_err(|message| StoreError::Corrupt {
                        key: id.to_owned(),
                        message,
                    })
            }
        }
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

    /// Ids of events waiting for fan-out (replays first, then new events
    /// oldest first), at most `limit`.
    pub fn inbox(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let cursor = self.cursor()?;
        let mut ids = Vec::new();
        for item in self.events.scan_prefix([INBOX]).keys().take(limit) {
            let id = String::from_utf8_lossy(&item?[1..]).into_owned();
            // Past the cursor it is listed below, once.
            if id <= cursor {
                ids.push(id);
            }
        }
        let through = self.stored_through()?;
        if through > cursor {
            let mut from = key(EVENT, cursor.as_bytes());
            from.push(0);
            let range = from..=key(EVENT, through.as_bytes());
            for item in self.events.range(range).keys() {
                if ids.len() >= limit {
                    break;
                }
                ids.push(String::from_utf8_lossy(&item?[1..]).into_owned());
            }
        }
        Ok(ids)
    }

    /// Marks events from [`EventStore::inbox`] as fanned out (their jobs are
    /// queued). New events must be marked in the order they were listed.
    pub fn inbox_done(&self, ids: &[String]) -> Result<(), StoreError> {
        let cursor = self.cursor()?;
        let mut batch = sled::Batch::default();
        let mut advanced = None;
        for id in ids {
            batch.remove(key(INBOX, id.as_bytes()));
            if *id > cursor {
                advanced = Some(id);
            }
        }
        if let Some(id) = advanced {
            batch.insert(CURSOR, id.as_bytes());
        }
        self.events.apply_batch(batch)?;
        Ok(())
    }

    /// The last event id fanned out ("" before the first).
    fn cursor(&self) -> Result<String, StoreError> {
        Ok(self
            .events
            .get(CURSOR)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    }

    fn stored_through(&self) -> Result<String, StoreError> {
        Ok(self
            .stored_through
            .read()
            .map_err(|_| StoreError::Flush("the store's committer thread panicked".into()))?
            .clone())
    }

    /// Puts a stored event back in the inbox so it is fanned out again
    /// (replay). False when the event is not stored.
    pub fn requeue(&self, id: &str) -> Result<bool, StoreError> {
        if !self.events.contains_key(key(EVENT, id.as_bytes()))? {
            return Ok(false);
        }
        self.events.insert(key(INBOX, id.as_bytes()), &[][..])?;
        Ok(true)
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
        let mut out = Vec::new();
        for item in self.events.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if k.first() != Some(&EVENT) {
                break;
            }
            let record = record::decode(&v).map_err(|message| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k[1..]).into_owned(),
                message,
            })?;
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
                match record::decode(&v) {
                    Ok(r) if r.source == s => {}
                    _ => continue,
                }
            }
            out.push(String::from_utf8_lossy(&k[1..]).into_owned());
        }
        Ok(out)
    }

    /// Deletes an event that is no longer waiting for fan-out (retention).
    /// False when it is absent or still in the inbox.
    pub fn delete_event(&self, id: &str) -> Result<bool, StoreError> {
        if id > self.cursor()?.as_str() || self.events.contains_key(key(INBOX, id.as_bytes()))? {
            return Ok(false);
        }
        Ok(self.events.remove(key(EVENT, id.as_bytes()))?.is_some())
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
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: br#"{"a":1}"#.to_vec(),
        }
    }

    #[tokio::test]
    async fn an_ingested_event_reads_back_byte_for_byte_and_waits_in_the_inbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let out = store.ingest(vec![event("a", None, 1)], 1000).await.unwrap();
        let Ingested::Stored(id) = &out[0] else {
            panic!("{out:?}")
        };
        let back = store.event(id).unwrap().expect("stored");
        assert_eq!(back.body, br#"{"a":1}"#);
        assert_eq!(back.kind, "job.completed");
        assert_eq!(store.inbox(10).unwrap(), vec![id.clone()]);
        store.inbox_done(std::slice::from_ref(id)).unwrap();
        assert!(store.inbox(10).unwrap().is_empty());
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
        let later = store
            .ingest(vec![event("a", Some("k"), t + 60_000)], 60_000)
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
        let store = EventStore::open(dir.path()).unwrap();
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
        let store = EventStore::open(dir.path()).unwrap();
        assert_eq!(store.load_dedupe(60_000).await.unwrap(), 1, "read back");
        assert_eq!(store.load_dedupe(60_000).await.unwrap(), 0, "already held");
        let again = store
            .ingest(vec![event("a", Some("k"), now_ms())], 60_000)
            .await
            .unwrap();
        assert_eq!(again[0], Ingested::Duplicate(first));
        assert_eq!(store.event_count(), 1);
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
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = {
            let store = EventStore::open(dir.path()).unwrap();
            let out = store
                .ingest((0..4).map(|i| event("a", None, i)).collect(), 0)
                .await
                .unwrap();
            let ids: Vec<_> = out.iter().map(|o| o.id().to_owned()).collect();
            assert_eq!(store.inbox(10).unwrap(), ids);
            assert_eq!(store.inbox(2).unwrap(), ids[..2]);
            store.inbox_done(&ids[..2]).unwrap();
            assert!(store.requeue(&ids[0]).unwrap());
            assert!(!store.requeue("evt_missing").unwrap());
            store.close().await.unwrap();
            ids
        };
        let store = EventStore::open(dir.path()).unwrap();
        // The replay first, then what was never fanned out.
        assert_eq!(
            store.inbox(10).unwrap(),
            vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]
        );
        assert!(!store.delete_event(&ids[3]).unwrap(), "still waiting");
        assert!(store.delete_event(&ids[1]).unwrap());
        store.inbox_done(&store.inbox(10).unwrap()).unwrap();
        assert!(store.inbox(10).unwrap().is_empty());
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
        assert_eq!(store.inbox(10).unwrap(), ["evt_01B"]);
        let later = store.ingest(vec![event("a", None, 6)], 0).await.unwrap();
        assert_eq!(store.inbox(10).unwrap(), ["evt_01B", later[0].id()]);
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
}
