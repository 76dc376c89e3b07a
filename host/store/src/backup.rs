//! Online backup: a copy of a running store that opens as the store did
//! when the copy began (or later), with nothing acknowledged before it
//! missing.
//!
//! The copy is taken the way the store recovers from a crash: under the
//! journal's file guard (no checkpoint removes a journal meanwhile), every
//! sled tree is copied entry by entry, then the newest snapshot and the
//! journals after it. Opening the copy replays those journals over the
//! sled copy, so whatever sled had not caught up with, and whatever
//! changed while the trees were read, comes from the journal. The dedupe
//! index is not copied: the copy's first start rebuilds it from the
//! events. Compiled plugin code is not part of the store.
//!
//! `dest` receives a data directory: `dest/db/`. Restoring is putting it
//! in place of the daemon's `data_dir` while the daemon is stopped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::EventStore;

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupReport {
    /// The data directory written (`dest`, holding `db/`).
    pub dest: PathBuf,
    /// sled trees copied.
    pub trees: usize,
    /// Entries copied from them.
    pub entries: u64,
    /// Bytes of snapshot and journal copied.
    pub journal_bytes: u64,
    /// How long it took.
    pub took_ms: u64,
}

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination is not an empty or new directory.
    #[error(
        "{0} is not empty: a backup goes into a new or empty directory, so it never mixes \
         with another"
    )]
    NotEmpty(PathBuf),
    /// The destination is not an absolute path.
    #[error("{0} is not an absolute path")]
    Relative(PathBuf),
    /// Reading the store or writing the copy failed.
    #[error("backup to {dest} failed: {message}")]
    Copy {
        /// The destination.
        dest: PathBuf,
        /// What failed.
        message: String,
    },
}

impl EventStore {
    /// Writes a copy of the store into `dest` (a new or empty directory)
    /// while it keeps running; see the [module docs](self).
    pub async fn backup(&self, dest: &Path) -> Result<BackupReport, BackupError> {
        if !dest.is_absolute() {
            return Err(BackupError::Relative(dest.to_owned()));
        }
        match std::fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(BackupError::NotEmpty(dest.to_owned()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(copy_error(dest, e)),
        }
        // What is appended but unwritten goes to the journal files first,
        // so the copy's journals cover as much of sled as they can.
        let _ = self.journal().sync().await;
        let store = self.clone();
        let dest = dest.to_owned();
        tokio::task::spawn_blocking(move || store.backup_blocking(&dest))
            .await
            .map_err(|e| BackupError::Copy {
                dest: PathBuf::new(),
                message: format!("the backup task failed: {e}"),
            })?
    }

    fn backup_blocking(&self, dest: &Path) -> Result<BackupReport, BackupError> {
        let started = Instant::now();
        // Written under a temporary name: a backup cut short is never
        // mistaken for a whole one.
        let partial = dest.join("db.partial");
        let db_dest = dest.join("db");
        let fail = |message: String| BackupError::Copy {
            dest: dest.to_owned(),
            message,
        };
        std::fs::create_dir_all(&partial).map_err(|e| copy_error(&partial, e))?;
        let ((trees, entries), journal_bytes) = self
            .journal()
            .copy_files(&partial.join("journal"), || {
                copy_trees(self.db(), &partial).map_err(crate::journal::JournalError::from)
            })
            .map_err(|e| fail(e.to_string()))?;
        crate::format::mark_current(&partial).map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&partial, &db_dest).map_err(|e| copy_error(&db_dest, e))?;
        std::fs::File::open(dest)
            .and_then(|d| d.sync_all())
            .map_err(|e| copy_error(dest, e))?;
        Ok(BackupReport {
            dest: dest.to_owned(),
            trees,
            entries,
            journal_bytes,
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

fn copy_error(path: &Path, e: std::io::Error) -> BackupError {
    BackupError::Copy {
        dest: path.to_owned(),
        message: e.to_string(),
    }
}

/// Copies every tree of `db` into a new sled database in `dir`, flushed.
fn copy_trees(db: &sled::Db, dir: &Path) -> Result<(usize, u64), String> {
    let copy = sled::Config::new()
        .path(dir)
        .open()
        .map_err(|e| format!("cannot create the copy in {}: {e}", dir.display()))?;
    let mut entries = 0u64;
    let names = db.tree_names();
    for name in &names {
        let from = db.open_tree(name).map_err(|e| e.to_string())?;
        let to = copy.open_tree(name).map_err(|e| e.to_string())?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0usize;
        for kv in from.iter() {
            let (k, v) = kv.map_err(|e| format!("reading the store: {e}"))?;
            batch.insert(k, v);
            in_batch += 1;
            entries = entries.saturating_add(1);
            if in_batch == 1024 {
                to.apply_batch(std::mem::take(&mut batch))
                    .map_err(|e| format!("writing the copy: {e}"))?;
                in_batch = 0;
            }
        }
        to.apply_batch(batch)
            .map_err(|e| format!("writing the copy: {e}"))?;
    }
    copy.flush()
        .map_err(|e| format!("flushing the copy: {e}"))?;
    Ok((names.len(), entries))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::events::{Ingested, NewEvent};

    fn event(n: usize) -> NewEvent {
        NewEvent {
            source: "hcp".into(),
            vendor: "housecall-pro".into(),
            kind: "job.completed".into(),
            entity: None,
            occurred_at: None,
            dedupe_key: Some(format!("k-{n}")),
            parsed: true,
            received_at_ms: 1_000,
            message: std::sync::Arc::new(fieldhook_core::event::Message {
                headers: vec![],
                body: format!(r#"{{"n":{n}}}"#).into_bytes(),
            }),
        }
    }

    fn id(out: &[Ingested]) -> String {
        match &out[0] {
            Ingested::Stored(id) | Ingested::Duplicate(id) => id.clone(),
        }
    }

    #[tokio::test]
    async fn a_backup_taken_while_events_arrive_holds_every_one_acknowledged_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&dir.path().join("db")).unwrap();
        let mut before = Vec::new();
        for n in 0..200 {
            before.push(id(&store.ingest(vec![event(n)], u64::MAX).await.unwrap()));
        }
        // Writers keep going while the copy is taken.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 200..400 {
                    store.ingest(vec![event(n)], u64::MAX).await.unwrap();
                }
            })
        };
        let dest = dir.path().join("backup");
        let report = store.backup(&dest).await.unwrap();
        writer.await.unwrap();
        assert!(report.entries >= 200, "{report:?}");

        let copy = EventStore::open(&dest.join("db")).unwrap();
        for id in &before {
            assert!(copy.event(id).unwrap().is_some(), "{id} is in the backup");
        }
        // The dedupe index is rebuilt: a redelivery is still a duplicate.
        let again = copy.ingest(vec![event(7)], u64::MAX).await.unwrap();
        assert!(
            matches!(&again[0], Ingested::Duplicate(d) if *d == before[7]),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn a_backup_never_writes_into_a_directory_that_holds_something() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("keep"), b"x").unwrap();
        let err = store.backup(dir.path()).await.unwrap_err();
        assert!(matches!(err, BackupError::NotEmpty(_)), "{err}");
        let err = store.backup(Path::new("relative")).await.unwrap_err();
        assert!(matches!(err, BackupError::Relative(_)), "{err}");
    }
}
