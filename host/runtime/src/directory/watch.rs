//! Hot load: watch the plugins directory and sync the set once it settles.
//!
//! A plugin lands as several writes (manifest, component, maybe a rename),
//! so changes are debounced: the set is synced once no change arrived for
//! the quiet period. A half-written component that still slips through fails
//! to load, keeps the previous version serving, and is retried on the next
//! write.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, MetadataKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};

use super::PluginSet;
use crate::Runtime;

/// Quiet period after the last change before the directory is synced.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// A running watch; dropping it stops watching.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

/// Watches `dir` and keeps `set` in line with it, on a thread of its own
/// (loading compiles, which may take seconds for JS or Python).
pub fn watch(runtime: Arc<Runtime>, dir: PathBuf, set: Arc<PluginSet>) -> notify::Result<Watcher> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if is_change(&e.kind) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "plugins directory watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    tracing::info!(dir = %dir.display(), "watching the plugins directory");
    std::thread::Builder::new()
        .name("fieldhook-plugins".into())
        .spawn(move || {
            // Ends when the watcher is dropped (its sender goes with it).
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(DEBOUNCE) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                let report = set.sync(&runtime, &dir);
                tracing::debug!(?report, "plugins directory synced");
            }
        })
        .map_err(notify::Error::io)?;
    Ok(Watcher { _watcher: watcher })
}

/// Whether an event can change what a directory holds. Reads (the sync's
/// own included) and access-time updates cannot.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RemoveKind};

    #[test]
    fn writes_creations_and_removals_are_changes_and_reads_are_not() {
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(is_change(&EventKind::Remove(RemoveKind::Folder)));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
    }
}
