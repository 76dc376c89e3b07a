//! The store's journal: what must survive a crash, appended to a file
//! before anything depends on it.
//!
//! sled holds the store's data and answers its queries, but sled 0.34
//! writes out and syncs a log buffer of its own whenever it is flushed (and
//! for every batch), which at thousands of writes a second cost more than
//! all the rest. So sled is written behind, and durability comes from
//! here: appending costs a memory copy; one writer thread writes what has
//! been appended with one `write` and makes it durable with one
//! `fdatasync`, so every sync is shared by as many requests and outcomes as
//! are ready. Opening replays the journal into sled and the task log; a
//! checkpoint (sled flushed, then a snapshot of the task log's unfinished
//! work) lets the journal before it go, so start-up is bounded by the work
//! in hand and the time since the last checkpoint, never by history.
//!
//! Files in the journal's directory:
//! - `journal-N.log`: an 8-byte header (`fhjrnl` and the format version),
//!   then records `[u32 length][u32 crc32][postcard record]`,
//!   little-endian. A torn record at the end (a crash mid-write) ends the
//!   file: nothing after it was acknowledged.
//! - `snapshot-N.bin`: the format version, a crc32, then the task log's
//!   unfinished work as it was when `journal-N` was started. Written to a
//!   temporary name, synced, then renamed.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::queue::{Attempt, Task, TaskState, Topic};

/// The journal's file format version (in each file's header).
const FORMAT: u8 = 1;
/// The first bytes of every journal file.
const MAGIC: [u8; 8] = [b'f', b'h', b'j', b'r', b'n', b'l', 0, FORMAT];

/// The journal could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("journal: {0}")]
pub struct JournalError(String);

impl From<String> for JournalError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

/// One change, as journaled (read back at open). Written as [`Change`],
/// which borrows what it records; the two encode alike.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Record {
    /// An event stored under this id, with its stored record.
    Event(String, Vec<u8>),
    /// The task is unfinished, as given (published, retried, replayed...).
    Put(Topic, Task),
    /// The task was leased: now attempt `.2`, its lease expiring at `.3`.
    Lease(Topic, String, u32, u64),
    /// The task finished (done or dead) with this last attempt; its record
    /// now lives in the finished history.
    Finish(Topic, String, TaskState, Attempt),
    /// Fan-out queued the jobs of every event through this id (when given)
    /// and of these replayed events.
    FannedOut(Option<String>, Vec<String>),
    /// Fan this stored event out again (replay).
    Requeue(String),
    /// A topic's finished tasks now number this many done and dead.
    Counts(Topic, u64, u64),
    /// A message stored once for the events split from it, under the id
    /// of the first of them, with its stored record. Journaled just before
    /// those events, in the same append. (Variants are numbered by
    /// position: new ones go last.)
    Message(String, Vec<u8>),
}

/// A change to journal, borrowing what it records: encodes exactly as the
/// [`Record`] it is read back as.
#[derive(Debug, Serialize)]
pub(crate) enum Change<'a> {
    /// [`Record::Event`].
    Event(&'a str, &'a [u8]),
    /// [`Record::Put`].
    Put(Topic, &'a Task),
    /// [`Record::Lease`].
    Lease(Topic, &'a str, u32, u64),
    /// [`Record::Finish`].
    Finish(Topic, &'a str, TaskState, &'a Attempt),
    /// [`Record::FannedOut`].
    FannedOut(Option<&'a str>, &'a [String]),
    /// [`Record::Requeue`].
    Requeue(&'a str),
    /// [`Record::Counts`].
    Counts(Topic, u64, u64),
    /// [`Record::Message`].
    Message(&'a str, &'a [u8]),
}

/// Changes framed for the journal, in order, not yet appended.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    bytes: Vec<u8>,
    count: u64,
}

impl Frames {
    /// Frames one more change.
    pub(crate) fn push(&mut self, change: &Change<'_>) {
        let start = self.bytes.len();
        // Room for the length and checksum, filled in once encoded.
        self.bytes.extend_from_slice(&[0; 8]);
        // Serialising plain data into a Vec cannot fail; were it to, the
        // frame is dropped rather than written half.
        match postcard::to_io(change, &mut self.bytes) {
            Ok(_) => {
                let body = &self.bytes[start + 8..];
                let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
                let crc = crc32fast::hash(body);
                self.bytes[start..start + 4].copy_from_slice(&len.to_le_bytes());
                self.bytes[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
                self.count += 1;
            }
            Err(_) => self.bytes.truncate(start),
        }
    }

    /// Changes framed so far.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }
}

/// What a snapshot holds: the task log's unfinished work.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// Every unfinished task.
    pub(crate) tasks: Vec<(Topic, Task)>,
    /// Each topic's finished tasks: `(topic, done, dead)`.
    pub(crate) counts: Vec<(Topic, u64, u64)>,
    /// The last event fanned out ("" before the first).
    pub(crate) fanned_out: String,
    /// Events waiting to be fanned out again.
    pub(crate) replays: Vec<String>,
}

/// Appended records nobody waits for reach the disk within this long.
const IDLE_SYNC: std::time::Duration = std::time::Duration::from_millis(50);
/// Appended bytes written without waiting for a sync request.
const WRITE_EARLY_BYTES: usize = 4 << 20;
/// The least time from one sync's start to the next. An fdatasync costs
/// the kernel (and a virtual machine's host) about as much whether it
/// carries one record or a hundred: under load, waiting this long lets
/// every request and outcome ready meanwhile share the next one, for at
/// most this much latency per durable step.
const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// Bytes appended and not yet written, by the file they belong to.
#[derive(Default)]
struct Pending {
    /// Sealed by a rotation: `(file number, bytes)`, oldest first.
    sealed: Vec<(u64, Vec<u8>)>,
    /// The current file's unwritten bytes.
    current: Vec<u8>,
    /// The current file's number.
    file: u64,
    /// The current file, opened by [`Journal::rotate`] for the writer to
    /// take: writing after a rotation needs no new descriptor.
    opened: Option<Open>,
    /// Records appended so far.
    appended: u64,
    /// The most records a caller waits to see durable: the writer writes
    /// and syncs when this is ahead of what it synced, not at every append.
    wanted: u64,
    /// Set when the journal is closing: the writer drains and stops.
    closing: bool,
    /// The writer sleeps until someone asks for a sync (rather than until
    /// its next sync is allowed): only then does a request wake it.
    idle: bool,
}

struct Shared {
    dir: PathBuf,
    /// Writes that reached the disk (each one write and one fdatasync).
    syncs: std::sync::atomic::AtomicU64,
    /// The longest write + fdatasync, µs.
    slowest_sync_us: std::sync::atomic::AtomicU64,
    pending: Mutex<Pending>,
    work: Condvar,
    /// Records made durable so far; `Err` once a write or sync failed.
    durable: watch::Sender<Result<u64, String>>,
    /// Held while files are removed (a checkpoint) or copied (a backup),
    /// so a backup never misses a journal a checkpoint removes under it.
    files: Mutex<()>,
}

/// The journal of one task log.
pub(crate) struct Journal {
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

fn journal_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("journal-{n:010}.log"))
}

fn snapshot_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("snapshot-{n:010}.bin"))
}

/// The numbers of the files called `{prefix}N{suffix}` in `dir`, sorted.
fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>, JournalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let name = entry.map_err(|e| io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn io(path: &Path, e: std::io::Error) -> JournalError {
    JournalError(format!("{}: {e}", path.display()))
}

/// Reads the records of one journal file; stops at the first torn or
/// corrupt record (where a crash cut the file short).
fn read_records(path: &Path, mut each: impl FnMut(Record)) -> Result<(), JournalError> {
    let file = File::open(path).map_err(|e| io(path, e))?;
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 8];
    match r.read_exact(&mut magic) {
        Ok(()) if magic == MAGIC => {}
        // Created, then the crash came before its header was written.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
        Ok(()) if magic[..6] == MAGIC[..6] => {
            return Err(JournalError(format!(
                "{} is in journal format {}; this fieldhook reads format {FORMAT}: run the fieldhook version that wrote it",
                path.display(),
                magic[7]
            )));
        }
        _ => {
            return Err(JournalError(format!(
                "{} is not a fieldhook journal",
                path.display()
            )));
        }
    }
    loop {
        let mut head = [0u8; 8];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io(path, e)),
        }
        let (len, crc) = head.split_at(4);
        let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_le_bytes(crc.try_into().unwrap_or([0; 4]));
        let mut payload = vec![0u8; len];
        if r.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            return Ok(());
        }
        match postcard::from_bytes(&payload) {
            Ok(record) => each(record),
            Err(_) => return Ok(()),
        }
    }
}

fn read_snapshot(path: &Path) -> Result<Snapshot, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    match bytes.first() {
        Some(&FORMAT) => {}
        Some(v) => {
            return Err(JournalError(format!(
                "{} is in snapshot format {v}; this fieldhook reads format {FORMAT}: run the fieldhook version that wrote it",
                path.display()
            )));
        }
        None => return Err(JournalError(format!("{} is empty", path.display()))),
    }
    let Some((crc, body)) = bytes[1..].split_at_checked(4) else {
        return Err(JournalError(format!("{} is truncated", path.display())));
    };
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(JournalError(format!(
            "{} fails its checksum",
            path.display()
        )));
    }
    postcard::from_bytes(body)
        .map_err(|e| JournalError(format!("{} does not decode: {e}", path.display())))
}

/// Writes `snapshot` as snapshot `n`: temporary file, sync, rename, sync
/// the directory.
fn write_snapshot(dir: &Path, n: u64, snapshot: &Snapshot) -> Result<(), JournalError> {
    let body = postcard::to_stdvec(snapshot)
        .map_err(|e| JournalError(format!("cannot encode a snapshot: {e}")))?;
    let tmp = dir.join(format!("snapshot-{n:010}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(&[FORMAT])
        .and_then(|()| f.write_all(&crc32fast::hash(&body).to_le_bytes()))
        .and_then(|()| f.write_all(&body))
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    let path = snapshot_path(dir, n);
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// What opening found: the newest snapshot, and the records after it in
/// order.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub(crate) snapshot: Snapshot,
    pub(crate) records: Vec<Record>,
}

/// Reads the newest snapshot in `dir` and the records after it, changing
/// nothing; also returns the number of the last file there.
pub(crate) fn read_dir(dir: &Path) -> Result<(Recovered, u64), JournalError> {
    if !dir.exists() {
        return Ok((Recovered::default(), 0));
    }
    let snapshots = numbered(dir, "snapshot-", ".bin")?;
    let journals = numbered(dir, "journal-", ".log")?;
    let (base, snapshot) = match snapshots.last() {
        Some(&n) => (n, read_snapshot(&snapshot_path(dir, n))?),
        None => (0, Snapshot::default()),
    };
    let mut records = Vec::new();
    for &n in journals.iter().filter(|&&n| n >= base) {
        read_records(&journal_path(dir, n), |r| records.push(r))?;
    }
    let last = journals.last().copied().unwrap_or(base).max(base);
    Ok((Recovered { snapshot, records }, last))
}

impl Journal {
    /// Opens the journal in `dir` (created if missing): reads the newest
    /// snapshot and the records after it, then starts a new journal file.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Recovered), JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let (recovered, last) = read_dir(dir)?;
        let next = last + 1;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            syncs: Default::default(),
            slowest_sync_us: Default::default(),
            pending: Mutex::new(Pending {
                file: next,
                ..Pending::default()
            }),
            work: Condvar::new(),
            durable: watch::Sender::new(Ok(0)),
            files: Mutex::new(()),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fieldhook-journal".into())
                .spawn(move || write_loop(&shared))
                .map_err(|e| JournalError(format!("cannot start the journal writer: {e}")))?
        };
        Ok((
            Self {
                shared,
                writer: Mutex::new(Some(writer)),
            },
            recovered,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Appends records; they are written at once and durable at the
    /// writer's next sync. Callers append under the task log's lock, so
    /// the journal's order is the task log's.
    pub(crate) fn append(&self, frames: &Frames) {
        if frames.count == 0 {
            return;
        }
        let mut p = self.lock();
        p.current.extend_from_slice(&frames.bytes);
        p.appended += frames.count;
        // Nobody waits for these yet: they go to disk with the next sync
        // someone asks for, or within `IDLE_SYNC`. A large backlog of bytes
        // is written early so one write stays bounded.
        let large = p.current.len() >= WRITE_EARLY_BYTES;
        drop(p);
        if large {
            self.shared.work.notify_one();
        }
    }

    /// Waits until every record appended before this call is durable.
    pub(crate) async fn sync(&self) -> Result<(), JournalError> {
        let (target, wake) = {
            let mut p = self.lock();
            let wake = p.idle && p.wanted < p.appended;
            p.wanted = p.wanted.max(p.appended);
            (p.appended, wake)
        };
        // Each notify is a system call: only when the writer waits for one.
        if wake {
            self.shared.work.notify_one();
        }
        let mut rx = self.shared.durable.subscribe();
        let seen = rx
            .wait_for(|d| d.as_ref().map_or(true, |n| *n >= target))
            .await
            .map_err(|_| JournalError("the journal writer has stopped".into()))?;
        seen.clone().map(|_| ()).map_err(JournalError)
    }

    /// Starts a new journal file; returns its number. Records appended
    /// from now on go to it. Called under the task log's lock together
    /// with taking the state a snapshot of this number holds.
    ///
    /// The file is opened here, not when first written: a daemon out of
    /// descriptors then fails a checkpoint (retried later), never the
    /// writes that acknowledge webhooks.
    pub(crate) fn rotate(&self) -> Result<u64, JournalError> {
        // Opened without holding `pending`, so appends never wait on the
        // file system; the task log's lock keeps rotations one at a time.
        let next = self.lock().file.saturating_add(1);
        let open = open_file(&journal_path(&self.shared.dir, next))?;
        let mut p = self.lock();
        let done = std::mem::take(&mut p.current);
        let file = p.file;
        p.sealed.push((file, done));
        p.file = next;
        p.opened = Some(open);
        Ok(next)
    }

    /// Records snapshot `n` (the unfinished tasks as journal `n` began) and
    /// removes the journals and snapshots it replaces. The caller has made
    /// sure everything those journals finished is durable elsewhere.
    pub(crate) async fn checkpoint(&self, n: u64, snapshot: Snapshot) -> Result<(), JournalError> {
        // The records before the rotation must be on disk before older
        // files go, or a crash would lose what the snapshot reflects.
        self.sync().await?;
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || -> Result<(), JournalError> {
            let dir = &shared.dir;
            let _files = shared.files.lock().unwrap_or_else(|p| p.into_inner());
            write_snapshot(dir, n, &snapshot)?;
            for old in numbered(dir, "journal-", ".log")?
                .into_iter()
                .filter(|&j| j < n)
            {
                let path = journal_path(dir, old);
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            }
            for old in numbered(dir, "snapshot-", ".bin")?
                .into_iter()
                .filter(|&s| s < n)
            {
                let path = snapshot_path(dir, old);
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| JournalError(format!("checkpoint task failed: {e}")))?
    }

    /// Copies the newest snapshot and the journals after it into `dest`,
    /// with no checkpoint removing files meanwhile. `before_copy` runs
    /// first, under the same guard: what it copies from sled is then
    /// covered by the journals copied after it.
    pub(crate) fn copy_files<T>(
        &self,
        dest: &Path,
        before_copy: impl FnOnce() -> Result<T, JournalError>,
    ) -> Result<(T, u64), JournalError> {
        let _files = self.shared.files.lock().unwrap_or_else(|p| p.into_inner());
        let dir = &self.shared.dir;
        let base = numbered(dir, "snapshot-", ".bin")?.last().copied();
        let out = before_copy()?;
        std::fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
        let mut bytes = 0u64;
        let mut copy = |from: PathBuf| -> Result<(), JournalError> {
            let Some(name) = from.file_name() else {
                return Ok(());
            };
            let to = dest.join(name);
            let n = std::fs::copy(&from, &to).map_err(|e| io(&from, e))?;
            File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&to, e))?;
            bytes = bytes.saturating_add(n);
            Ok(())
        };
        if let Some(n) = base {
            copy(snapshot_path(dir, n))?;
        }
        // A record being appended while this reads is cut short in the
        // copy and ends it, as after a crash: it was not acknowledged
        // before the copy began.
        for n in numbered(dir, "journal-", ".log")?
            .into_iter()
            .filter(|&j| j >= base.unwrap_or(0))
        {
            copy(journal_path(dir, n))?;
        }
        File::open(dest)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dest, e))?;
        Ok((out, bytes))
    }

    /// Writes made durable so far, and the slowest one's µs.
    pub(crate) fn stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.shared.syncs.load(Relaxed),
            self.shared.slowest_sync_us.load(Relaxed),
        )
    }

    /// Writes what is pending and stops the writer.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.shared.work.notify_one();
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// An open journal file and how much of it is known good.
struct Open {
    file: File,
    len: u64,
}

/// Opens journal file `path` for appending, writing its header if it is
/// new (made durable with the first records synced to it).
fn open_file(path: &Path) -> Result<Open, JournalError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| JournalError(format!("cannot open {}: {e}", path.display())))?;
    let len = file.metadata().map_err(|e| io(path, e))?.len();
    if len > 0 {
        return Ok(Open { file, len });
    }
    file.write_all(&MAGIC)
        .map_err(|e| JournalError(format!("journal write failed: {e}")))?;
    Ok(Open {
        file,
        len: MAGIC.len() as u64,
    })
}

/// The writer thread: waits for appended bytes, writes them to their
/// files, syncs each file written, then publishes how far is durable. A
/// failed write is cut back off its file and tried again (a full disk that
/// gets space back loses nothing appended meanwhile).
fn write_loop(shared: &Shared) {
    let mut files: std::collections::BTreeMap<u64, Open> = Default::default();
    // Records durable so far.
    let mut synced = 0u64;
    // While writes fail (a full disk), the log hears of it at first and
    // then once a minute, not at every retry.
    let mut failing_since: Option<std::time::Instant> = None;
    let mut last_logged = std::time::Instant::now();
    let mut last_sync = std::time::Instant::now();
    loop {
        let (chunks, appended, closing) = {
            let mut p = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let pending = !p.sealed.is_empty() || !p.current.is_empty();
                if p.closing || (pending && p.current.len() >= WRITE_EARLY_BYTES) {
                    break;
                }
                if pending && p.wanted > synced {
                    let next = last_sync + SYNC_INTERVAL;
                    let now = std::time::Instant::now();
                    if now >= next {
                        break;
                    }
                    let (guard, _) = shared
                        .work
                        .wait_timeout(p, next - now)
                        .unwrap_or_else(|p| p.into_inner());
                    p = guard;
                    continue;
                }
                let wait = if pending {
                    IDLE_SYNC
                } else {
                    std::time::Duration::from_secs(3600)
                };
                p.idle = true;
                let (guard, timeout) = shared
                    .work
                    .wait_timeout(p, wait)
                    .unwrap_or_else(|p| p.into_inner());
                p = guard;
                p.idle = false;
                if timeout.timed_out() && (!p.sealed.is_empty() || !p.current.is_empty()) {
                    break;
                }
            }
            if let Some(open) = p.opened.take() {
                files.insert(p.file, open);
            }
            let mut chunks = std::mem::take(&mut p.sealed);
            let file = p.file;
            chunks.push((file, std::mem::take(&mut p.current)));
            (chunks, p.appended, p.closing)
        };
        let started = std::time::Instant::now();
        last_sync = started;
        let result = write_chunks(shared, &mut files, &chunks);
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        shared
            .slowest_sync_us
            .fetch_max(took, std::sync::atomic::Ordering::Relaxed);
        shared
            .syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(()) => {
                if let Some(since) = failing_since.take() {
                    tracing::info!(
                        after_ms = since.elapsed().as_millis(),
                        "journal writes again"
                    );
                }
                synced = appended;
                // Files before the newest are complete once synced.
                let newest = files.keys().next_back().copied();
                files.retain(|n, _| Some(*n) == newest);
                // The previous value (how far was durable) is not needed.
                let _ = shared.durable.send_replace(Ok(appended));
                if closing {
                    let p = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
                    if p.sealed.is_empty() && p.current.is_empty() {
                        return;
                    }
                }
            }
            Err(e) => {
                let now = std::time::Instant::now();
                if failing_since.is_none() {
                    failing_since = Some(now);
                    last_logged = now;
                    tracing::error!(error = %e, "journal write failed; retrying every 200 ms, nothing waiting on it is acknowledged meanwhile");
                } else if now.duration_since(last_logged) >= std::time::Duration::from_secs(60) {
                    last_logged = now;
                    tracing::error!(error = %e, "journal writes still failing; retrying");
                }
                let _ = shared.durable.send_replace(Err(e));
                // Put the chunks back in front, in order, and try again.
                let mut p = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
                let mut again: Vec<(u64, Vec<u8>)> = Vec::new();
                for (n, bytes) in chunks {
                    match again.last_mut() {
                        Some((m, b)) if *m == n => b.extend_from_slice(&bytes),
                        _ => again.push((n, bytes)),
                    }
                }
                let current_file = p.file;
                if let Some((n, bytes)) = again.last()
                    && *n == current_file
                {
                    let mut merged = bytes.clone();
                    merged.extend_from_slice(&p.current);
                    p.current = merged;
                    again.pop();
                }
                again.append(&mut p.sealed);
                p.sealed = again;
                drop(p);
                if closing {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}

/// Writes and syncs `chunks`; on failure, every file is cut back to what
/// was good before, so a retry appends cleanly.
fn write_chunks(
    shared: &Shared,
    files: &mut std::collections::BTreeMap<u64, Open>,
    chunks: &[(u64, Vec<u8>)],
) -> Result<(), String> {
    let mut touched: Vec<u64> = Vec::new();
    let mut failed = None;
    for (n, bytes) in chunks {
        if bytes.is_empty() {
            continue;
        }
        if !files.contains_key(n) {
            match open_file(&journal_path(&shared.dir, *n)) {
                Ok(open) => {
                    files.insert(*n, open);
                }
                Err(e) => {
                    failed = Some(e.0);
                    break;
                }
            }
        }
        let Some(open) = files.get_mut(n) else {
            continue;
        };
        if !touched.contains(n) {
            touched.push(*n);
        }
        if let Err(e) = open.file.write_all(bytes) {
            failed = Some(format!("journal write failed: {e}"));
            break;
        }
    }
    if failed.is_none() {
        for n in &touched {
            if let Some(open) = files.get(n)
                && let Err(e) = open.file.sync_data()
            {
                failed = Some(format!("journal fdatasync failed: {e}"));
                break;
            }
        }
    }
    match failed {
        None => {
            for n in &touched {
                if let Some(open) = files.get_mut(n) {
                    let written: usize = chunks
                        .iter()
                        .filter(|(m, _)| m == n)
                        .map(|(_, b)| b.len())
                        .sum();
                    open.len = open.len.saturating_add(written as u64);
                }
            }
            Ok(())
        }
        Some(e) => {
            for n in &touched {
                if let Some(open) = files.get(n) {
                    let _ = open.file.set_len(open.len);
                }
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends a requeue record for each of `ids`.
    fn append_requeues(journal: &Journal, ids: &[&str]) {
        let mut f = Frames::default();
        for id in ids {
            f.push(&Change::Requeue(id));
        }
        journal.append(&f);
    }

    fn task(id: &str) -> Task {
        Task {
            id: id.into(),
            state: TaskState::Ready,
            attempts: 0,
            due_ms: 5,
            created_ms: 1,
            payload: b"payload".to_vec(),
            history: vec![Attempt {
                at_ms: 2,
                outcome: "503".into(),
            }],
            order_key: Some("job-1".into()),
            coalesce_key: None,
        }
    }

    /// Each change, and the record opening must read back for it.
    fn pairs() -> Vec<(Frames, Record)> {
        let t = task("a");
        let attempt = Attempt {
            at_ms: 9,
            outcome: "ok".into(),
        };
        let replays = vec!["evt_2".to_owned()];
        let one = |c: Change<'_>| {
            let mut f = Frames::default();
            f.push(&c);
            f
        };
        vec![
            (
                one(Change::Event("evt_1", b"bytes")),
                Record::Event("evt_1".into(), b"bytes".to_vec()),
            ),
            (
                one(Change::Put(Topic::Jobs, &t)),
                Record::Put(Topic::Jobs, t.clone()),
            ),
            (
                one(Change::Lease(Topic::Deliveries, "a", 3, 70)),
                Record::Lease(Topic::Deliveries, "a".into(), 3, 70),
            ),
            (
                one(Change::Finish(Topic::Jobs, "a", TaskState::Dead, &attempt)),
                Record::Finish(Topic::Jobs, "a".into(), TaskState::Dead, attempt.clone()),
            ),
            (
                one(Change::FannedOut(Some("evt_1"), &replays)),
                Record::FannedOut(Some("evt_1".into()), replays.clone()),
            ),
            (
                one(Change::Requeue("evt_2")),
                Record::Requeue("evt_2".into()),
            ),
            (
                one(Change::Counts(Topic::Jobs, 4, 1)),
                Record::Counts(Topic::Jobs, 4, 1),
            ),
            (
                one(Change::Message("evt_1", b"message")),
                Record::Message("evt_1".into(), b"message".to_vec()),
            ),
        ]
    }

    #[test]
    fn every_change_reads_back_as_its_record() {
        for (frames, record) in pairs() {
            assert_eq!(frames.len(), 1);
            let body = &frames.bytes[8..];
            let len = u32::from_le_bytes(frames.bytes[..4].try_into().unwrap());
            assert_eq!(len as usize, body.len());
            let crc = u32::from_le_bytes(frames.bytes[4..8].try_into().unwrap());
            assert_eq!(crc, crc32fast::hash(body));
            let read: Record = postcard::from_bytes(body).unwrap();
            assert_eq!(format!("{read:?}"), format!("{record:?}"));
        }
    }

    #[tokio::test]
    async fn synced_records_are_read_back_in_order_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, recovered) = Journal::open(dir.path()).unwrap();
        assert!(recovered.records.is_empty());
        for (frames, _) in pairs() {
            journal.append(&frames);
        }
        journal.sync().await.unwrap();
        // Dropped without closing cleanly: what was synced is there.
        std::mem::forget(journal);
        let (_journal, recovered) = Journal::open(dir.path()).unwrap();
        let want: Vec<String> = pairs().iter().map(|(_, r)| format!("{r:?}")).collect();
        let got: Vec<String> = recovered.records.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_record_torn_by_a_crash_ends_the_journal_and_nothing_after_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (journal, _) = Journal::open(dir.path()).unwrap();
            append_requeues(&journal, &["evt_1", "evt_2"]);
            journal.sync().await.unwrap();
        }
        let file = journal_path(dir.path(), 1);
        let len = std::fs::metadata(&file).unwrap().len();
        // Cut the second record in half, as a crash mid-write would.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (_journal, recovered) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovered.records.len(), 1);
        assert!(matches!(&recovered.records[0], Record::Requeue(id) if id == "evt_1"));
    }

    #[tokio::test]
    async fn a_checkpoint_replaces_the_journals_before_it_with_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        append_requeues(&journal, &["evt_old"]);
        let n = journal.rotate().unwrap();
        append_requeues(&journal, &["evt_new"]);
        let snapshot = Snapshot {
            tasks: vec![(Topic::Jobs, task("a"))],
            counts: vec![(Topic::Jobs, 7, 1)],
            fanned_out: "evt_0".into(),
            replays: vec!["evt_old".into()],
        };
        journal.checkpoint(n, snapshot).await.unwrap();
        journal.sync().await.unwrap();
        drop(journal);
        let files: Vec<u64> = numbered(dir.path(), "journal-", ".log").unwrap();
        assert!(files.iter().all(|&f| f >= n), "{files:?}");
        let (_journal, recovered) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovered.snapshot.fanned_out, "evt_0");
        assert_eq!(recovered.snapshot.counts, vec![(Topic::Jobs, 7, 1)]);
        assert_eq!(recovered.snapshot.tasks.len(), 1);
        assert_eq!(recovered.records.len(), 1);
        assert!(matches!(&recovered.records[0], Record::Requeue(id) if id == "evt_new"));
    }

    #[tokio::test]
    async fn a_rotation_that_cannot_open_its_file_leaves_writes_on_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        append_requeues(&journal, &["evt_1"]);
        journal.sync().await.unwrap();
        // Where the next file would go, something that is not a file.
        std::fs::create_dir(journal_path(dir.path(), 2)).unwrap();
        let refused = journal.rotate().unwrap_err();
        assert!(refused.0.contains("journal-0000000002.log"), "{refused}");
        append_requeues(&journal, &["evt_2"]);
        journal
            .sync()
            .await
            .expect("writes go on in the current file");
        drop(journal);
        std::fs::remove_dir(journal_path(dir.path(), 2)).unwrap();
        let (_journal, recovered) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovered.records.len(), 2);
    }

    #[tokio::test]
    async fn writes_after_a_rotation_go_to_the_file_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        let n = journal.rotate().unwrap();
        assert!(journal_path(dir.path(), n).is_file(), "opened at rotation");
        append_requeues(&journal, &["evt_1"]);
        journal.sync().await.unwrap();
        drop(journal);
        let mut read = Vec::new();
        read_records(&journal_path(dir.path(), n), |r| read.push(r)).unwrap();
        assert!(matches!(&read[..], [Record::Requeue(id)] if id == "evt_1"));
    }
}
