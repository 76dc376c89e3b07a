//! The dedupe index: under which event each (source, dedupe key) pair was
//! stored, in a file of its own (`dedupe.idx` beside sled's files).
//!
//! The file is a hash table with open addressing: a 64-byte header, then
//! 32-byte slots, each a 128-bit digest of source and key and the event's
//! ULID (whose timestamp is its receive time). Looking a key up reads a few
//! neighbouring slots with one `pread`; storing one writes its slot with
//! one `pwrite`. Nothing is read at start-up, so opening costs the same
//! whatever the window (a week of keys at a hundred a second is some sixty
//! million slots, in the page cache as they are used, not in the heap).
//!
//! Slots are never emptied, so every probe sequence stays intact: a slot
//! whose event is older than the widest dedupe window in use is free to
//! reuse, and a key taken back (its event was not stored after all) keeps
//! its digest with a nil ULID. The table doubles when three quarters of its
//! slots are taken, keeping only live entries.
//!
//! Writes are not synced one by one: the journal replays the events of its
//! records into the index at open, and a checkpoint syncs the file before
//! dropping the journal that would. A store from before the file gets one
//! built from its stored events when first opened.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use ulid::Ulid;

use super::StoreError;
use super::record::DedupeFields;

/// The index's file name inside the store's directory.
pub(super) const FILE: &str = "dedupe.idx";

const MAGIC: [u8; 8] = *b"fhdedup1";
const HEADER: u64 = 64;
const SLOT: u64 = 32;
/// Slots read per `pread` while probing.
const CHUNK: u64 = 16;
/// Slots of a new table: 32 MiB of file, written sparsely.
const INITIAL_SLOTS: u64 = 1 << 20;
/// A probe this long means the table needs room, whatever it counts.
const LONGEST_PROBE: u64 = 1 << 12;

/// Digest of one (source, dedupe key) pair.
pub(super) type Fingerprint = [u8; 16];

pub(super) fn fingerprint(source: &str, key: &str) -> Fingerprint {
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

fn io(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Flush(format!("dedupe index {}: {what}: {e}", path.display()))
}

/// One slot as stored.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot {
    fp: Fingerprint,
    /// `0` never used; nil ULID with a digest: taken back.
    event: u128,
}

impl Slot {
    fn read(bytes: &[u8]) -> Self {
        let mut fp = [0; 16];
        fp.copy_from_slice(&bytes[..16]);
        let mut event = [0; 16];
        event.copy_from_slice(&bytes[16..32]);
        Slot {
            fp,
            event: u128::from_le_bytes(event),
        }
    }

    fn bytes(&self) -> [u8; 32] {
        let mut out = [0; 32];
        out[..16].copy_from_slice(&self.fp);
        out[16..].copy_from_slice(&self.event.to_le_bytes());
        out
    }

    fn is_empty(&self) -> bool {
        self.fp == [0; 16] && self.event == 0
    }

    /// Received at, Unix ms (0 for a key taken back).
    fn at_ms(&self) -> u64 {
        Ulid(self.event).timestamp_ms()
    }
}

/// The open index.
pub(super) struct DedupeIndex {
    path: PathBuf,
    file: File,
    slots: u64,
    /// Slots ever taken (live, expired or taken back): what fills the table.
    taken: u64,
    /// Every key's home slot, to make keys collide in tests.
    #[cfg(test)]
    home: Option<u64>,
}

impl std::fmt::Debug for DedupeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupeIndex")
            .field("path", &self.path)
            .field("slots", &self.slots)
            .field("taken", &self.taken)
            .finish()
    }
}

/// Where a probe for a key ended.
struct Probe {
    /// The slot holding the key, with what it holds.
    found: Option<(u64, Slot)>,
    /// The first slot on the way that may be written, and whether it was
    /// never used (rather than expired or taken back).
    free: Option<(u64, bool)>,
    /// Slots looked at.
    length: u64,
}

impl DedupeIndex {
    /// Opens the index in `dir`; `None` when there is no index file yet
    /// (the caller builds one).
    pub(super) fn open(dir: &Path) -> Result<Option<Self>, StoreError> {
        let path = dir.join(FILE);
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, "cannot open", e)),
        };
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| io(&path, "cannot read the header", e))?;
        if header[..8] != MAGIC {
            return Err(StoreError::Corrupt {
                key: FILE.into(),
                message: format!(
                    "{} is not a fieldhook dedupe index; remove it and the daemon rebuilds it from the stored events",
                    path.display()
                ),
            });
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let (slots, taken) = (word(8), word(16));
        let len = file
            .metadata()
            .map_err(|e| io(&path, "cannot stat", e))?
            .len();
        if slots == 0 || len < HEADER.saturating_add(slots.saturating_mul(SLOT)) {
            return Err(StoreError::Corrupt {
                key: FILE.into(),
                message: format!(
                    "{} is cut short; remove it and the daemon rebuilds it from the stored events",
                    path.display()
                ),
            });
        }
        Ok(Some(Self {
            path,
            file,
            slots,
            taken,
            #[cfg(test)]
            home: None,
        }))
    }

    /// Creates an empty index in `dir` with `slots` slots, replacing any.
    pub(super) fn create(dir: &Path, slots: u64) -> Result<Self, StoreError> {
        let path = dir.join(FILE);
        Self::create_at(&path, slots)
    }

    fn create_at(path: &Path, slots: u64) -> Result<Self, StoreError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| io(path, "cannot create", e))?;
        file.set_len(HEADER + slots * SLOT)
            .map_err(|e| io(path, "cannot size", e))?;
        let index = Self {
            path: path.to_owned(),
            file,
            slots,
            taken: 0,
            #[cfg(test)]
            home: None,
        };
        index.write_header()?;
        Ok(index)
    }

    fn write_header(&self) -> Result<(), StoreError> {
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(&MAGIC);
        header[8..16].copy_from_slice(&self.slots.to_le_bytes());
        header[16..24].copy_from_slice(&self.taken.to_le_bytes());
        self.file
            .write_all_at(&header, 0)
            .map_err(|e| io(&self.path, "cannot write the header", e))
    }

    fn home(&self, fp: &Fingerprint) -> u64 {
        #[cfg(test)]
        if let Some(home) = self.home {
            return home;
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&fp[..8]);
        u64::from_le_bytes(w) % self.slots
    }

    fn probe(&self, fp: &Fingerprint, cutoff_ms: u64) -> Result<Probe, StoreError> {
        let mut at = self.home(fp);
        let mut probe = Probe {
            found: None,
            free: None,
            length: 0,
        };
        let mut buf = [0u8; (CHUNK * SLOT) as usize];
        while probe.length < self.slots.min(LONGEST_PROBE) {
            let n = CHUNK.min(self.slots - at);
            let bytes = &mut buf[..(n * SLOT) as usize];
            self.file
                .read_exact_at(bytes, HEADER + at * SLOT)
                .map_err(|e| io(&self.path, "cannot read", e))?;
            for i in 0..n {
                let slot = Slot::read(&bytes[(i * SLOT) as usize..((i + 1) * SLOT) as usize]);
                probe.length += 1;
                if slot.is_empty() {
                    probe.free.get_or_insert((at + i, true));
                    return Ok(probe);
                }
                if slot.fp == *fp {
                    probe.found = Some((at + i, slot));
                    return Ok(probe);
                }
                if slot.at_ms() < cutoff_ms {
                    probe.free.get_or_insert((at + i, false));
                }
            }
            at = (at + n) % self.slots;
        }
        Ok(probe)
    }

    fn write_slot(&self, index: u64, slot: Slot) -> Result<(), StoreError> {
        self.file
            .write_all_at(&slot.bytes(), HEADER + index * SLOT)
            .map_err(|e| io(&self.path, "cannot write", e))
    }

    /// The event stored under this key at or after `since_ms`, if any.
    pub(super) fn lookup(
        &self,
        fp: &Fingerprint,
        since_ms: u64,
    ) -> Result<Option<Ulid>, StoreError> {
        Ok(self
            .probe(fp, 0)?
            .found
            .filter(|(_, s)| s.event != 0 && s.at_ms() >= since_ms)
            .map(|(_, s)| Ulid(s.event)))
    }

    /// Records that `event` was stored under this key. Entries received
    /// before `keep_since_ms` may be overwritten to make room.
    pub(super) fn insert(
        &mut self,
        fp: &Fingerprint,
        event: Ulid,
        keep_since_ms: u64,
    ) -> Result<(), StoreError> {
        let probe = self.probe(fp, keep_since_ms)?;
        let slot = Slot {
            fp: *fp,
            event: event.0,
        };
        match (probe.found, probe.free) {
            (Some((at, _)), _) => self.write_slot(at, slot)?,
            (None, Some((at, never_used))) => {
                self.write_slot(at, slot)?;
                if never_used {
                    self.taken = self.taken.saturating_add(1);
                }
            }
            (None, None) => {
                // No room on this key's whole probe: grow, then place it.
                self.grow(keep_since_ms)?;
                return self.insert(fp, event, keep_since_ms);
            }
        }
        if self.taken.saturating_mul(4) > self.slots.saturating_mul(3)
            || probe.length >= LONGEST_PROBE
        {
            self.grow(keep_since_ms)?;
        }
        Ok(())
    }

    /// Takes back `event`'s entry (it was not stored after all).
    pub(super) fn forget(&mut self, fp: &Fingerprint, event: Ulid) -> Result<(), StoreError> {
        if let Some((at, slot)) = self.probe(fp, 0)?.found
            && slot.event == event.0
        {
            self.write_slot(at, Slot { fp: *fp, event: 0 })?;
        }
        Ok(())
    }

    /// Rewrites the table with only the entries received at or after
    /// `keep_since_ms`, twice as large if they fill half of it.
    fn grow(&mut self, keep_since_ms: u64) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let live = self.live_entries(keep_since_ms)?;
        let mut slots = self.slots.max(INITIAL_SLOTS);
        while (live.len() as u64).saturating_mul(2) > slots {
            slots = slots.saturating_mul(2);
        }
        if slots == self.slots && live.len() as u64 * 4 > self.slots {
            slots = slots.saturating_mul(2);
        }
        let next = self.path.with_extension("idx.new");
        let mut fresh = Self::create_at(&next, slots)?;
        for slot in &live {
            fresh.insert(&slot.fp, Ulid(slot.event), keep_since_ms)?;
        }
        fresh.write_header()?;
        fresh
            .file
            .sync_all()
            .map_err(|e| io(&next, "cannot sync", e))?;
        std::fs::rename(&next, &self.path).map_err(|e| io(&self.path, "cannot replace", e))?;
        fresh.path = self.path.clone();
        tracing::info!(
            live = live.len(),
            slots,
            ms = started.elapsed().as_millis() as u64,
            "dedupe index resized"
        );
        *self = fresh;
        Ok(())
    }

    fn live_entries(&self, since_ms: u64) -> Result<Vec<Slot>, StoreError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; (4096 * SLOT) as usize];
        let mut at = 0;
        while at < self.slots {
            let n = 4096.min(self.slots - at);
            let bytes = &mut buf[..(n * SLOT) as usize];
            self.file
                .read_exact_at(bytes, HEADER + at * SLOT)
                .map_err(|e| io(&self.path, "cannot read", e))?;
            for i in 0..n {
                let slot = Slot::read(&bytes[(i * SLOT) as usize..((i + 1) * SLOT) as usize]);
                if slot.event != 0 && slot.at_ms() >= since_ms {
                    out.push(slot);
                }
            }
            at += n;
        }
        Ok(out)
    }

    /// Makes what was written durable (a checkpoint, closing).
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        self.write_header()?;
        self.file
            .sync_data()
            .map_err(|e| io(&self.path, "cannot sync", e))
    }

    /// Indexes a stored event record, if it has a dedupe key.
    pub(super) fn index_record(
        &mut self,
        record: &[u8],
        keep_since_ms: u64,
    ) -> Result<(), StoreError> {
        let r = DedupeFields::decode(record).map_err(|message| StoreError::Corrupt {
            key: "(dedupe index)".into(),
            message,
        })?;
        let (Some(dk), Some(ulid)) = (
            r.dedupe_key,
            r.id.strip_prefix("evt_")
                .and_then(|u| Ulid::from_string(u).ok()),
        ) else {
            return Ok(());
        };
        let fp = fingerprint(r.source, dk);
        // A newer event under the key (already indexed) wins.
        if let Some(current) = self.lookup(&fp, 0)?
            && current > ulid
        {
            return Ok(());
        }
        self.insert(&fp, ulid, keep_since_ms)
    }
}

/// Builds the index of a store from its events (a store from before the
/// index file, or one whose file was removed); returns it and how many
/// events had a dedupe key.
pub(super) fn build(dir: &Path, events: &sled::Tree) -> Result<(DedupeIndex, usize), StoreError> {
    let mut index = DedupeIndex::create(dir, INITIAL_SLOTS)?;
    let mut indexed = 0;
    for item in events.scan_prefix([super::EVENT]) {
        let (_, v) = item?;
        index.index_record(&v, 0)?;
        indexed += 1;
    }
    index.sync()?;
    Ok((index, indexed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulid_at(ms: u64, n: u128) -> Ulid {
        Ulid::from_parts(ms, n)
    }

    #[test]
    fn fingerprints_are_per_source_and_never_collide_across_the_separator() {
        assert_ne!(fingerprint("a", "k"), fingerprint("b", "k"));
        // "a"+"bk" must not collide with "ab"+"k".
        assert_ne!(fingerprint("a", "bk"), fingerprint("ab", "k"));
    }

    #[test]
    fn a_key_is_found_inside_the_window_only_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = DedupeIndex::create(dir.path(), 64).unwrap();
        let k = fingerprint("a", "k");
        index.insert(&k, ulid_at(1_000, 1), 0).unwrap();
        assert_eq!(index.lookup(&k, 900).unwrap(), Some(ulid_at(1_000, 1)));
        assert_eq!(index.lookup(&k, 1_001).unwrap(), None);
        assert_eq!(index.lookup(&fingerprint("b", "k"), 0).unwrap(), None);
        index.sync().unwrap();
        drop(index);
        let index = DedupeIndex::open(dir.path()).unwrap().unwrap();
        assert_eq!(index.lookup(&k, 900).unwrap(), Some(ulid_at(1_000, 1)));
    }

    #[test]
    fn a_key_taken_back_is_not_found_and_keys_after_it_still_are() {
        let dir = tempfile::tempdir().unwrap();
        // One slot's worth of home positions: every key collides.
        let mut index = DedupeIndex::create(dir.path(), 8).unwrap();
        index.home = Some(3);
        let (a, b) = (fingerprint("a", "1"), fingerprint("a", "2"));
        index.insert(&a, ulid_at(10, 1), 0).unwrap();
        index.insert(&b, ulid_at(10, 2), 0).unwrap();
        index.forget(&a, ulid_at(10, 1)).unwrap();
        assert_eq!(index.lookup(&a, 0).unwrap(), None);
        assert_eq!(index.lookup(&b, 0).unwrap(), Some(ulid_at(10, 2)));
    }

    #[test]
    fn a_full_table_grows_and_keeps_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = DedupeIndex::create(dir.path(), 64).unwrap();
        for i in 0..60u128 {
            index
                .insert(&fingerprint("a", &i.to_string()), ulid_at(5_000, i), 0)
                .unwrap();
        }
        assert!(index.slots > 64, "{index:?}");
        for i in 0..60u128 {
            assert_eq!(
                index.lookup(&fingerprint("a", &i.to_string()), 0).unwrap(),
                Some(ulid_at(5_000, i))
            );
        }
    }

    #[test]
    fn growing_drops_the_entries_older_than_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = DedupeIndex::create(dir.path(), 64).unwrap();
        for i in 0..40u128 {
            let at = if i < 20 { 100 } else { 5_000 };
            index
                .insert(&fingerprint("a", &i.to_string()), ulid_at(at, i), 0)
                .unwrap();
        }
        index.grow(1_000).unwrap();
        assert_eq!(index.taken, 20);
        for i in 0..40u128 {
            let found = index.lookup(&fingerprint("a", &i.to_string()), 0).unwrap();
            assert_eq!(found.is_some(), i >= 20, "{i}");
        }
    }

    #[test]
    fn an_expired_slot_is_reused_without_breaking_the_keys_probed_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = DedupeIndex::create(dir.path(), 8).unwrap();
        index.home = Some(7);
        let (old, live, new) = (
            fingerprint("a", "old"),
            fingerprint("a", "live"),
            fingerprint("a", "new"),
        );
        index.insert(&old, ulid_at(100, 1), 0).unwrap();
        index.insert(&live, ulid_at(5_000, 2), 0).unwrap();
        // `old` expired: `new` takes its slot, `live` stays reachable.
        index.insert(&new, ulid_at(6_000, 3), 1_000).unwrap();
        assert_eq!(index.lookup(&live, 1_000).unwrap(), Some(ulid_at(5_000, 2)));
        assert_eq!(index.lookup(&new, 1_000).unwrap(), Some(ulid_at(6_000, 3)));
        assert_eq!(index.lookup(&old, 0).unwrap(), None);
    }
}
