//! The store's format version, in the file `format` of its directory.
//!
//! It says which layout of sled trees, journal and dedupe index the files
//! are in, so a daemon never opens a store it cannot read: a newer format
//! is refused with what to do, an older one is converted (each part of the
//! store converts its own older layouts when opened) and then marked
//! current. A store from before the file is format 0.

use std::path::{Path, PathBuf};

/// The format this build writes (and every older one it reads):
/// - 1: the layout of sled trees, journal and dedupe index with this file;
/// - 2: the events split from one message share one stored copy of it.
pub const CURRENT: u32 = 2;
const FILE: &str = "format";
const PREFIX: &str = "fieldhook-store format ";

/// Why a store cannot be opened by this build.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Written by a newer fieldhook.
    #[error(
        "{path} is store format {found}, newer than this fieldhook reads (format {supported}): \
         run the fieldhook version that wrote it, or restore a backup taken with this one"
    )]
    Newer {
        /// The format file.
        path: PathBuf,
        /// What it says.
        found: u32,
        /// What this build reads.
        supported: u32,
    },
    /// The file is not a format record.
    #[error(
        "{path} does not hold a store format (expected `{PREFIX}N`); restore it from a backup \
         of this store, or write `{PREFIX}{CURRENT}` if the store is otherwise intact"
    )]
    Unreadable {
        /// The format file.
        path: PathBuf,
    },
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The format file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// The format recorded in `dir` (0 for a store from before the record,
/// `None` for an empty directory: a new store).
pub fn read(dir: &Path) -> Result<Option<u32>, FormatError> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or(FormatError::Unreadable { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let has_files = std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            Ok(has_files.then_some(0))
        }
        Err(source) => Err(FormatError::Io { path, source }),
    }
}

/// Refuses a store this build cannot read; returns its format.
pub(crate) fn check(dir: &Path) -> Result<Option<u32>, FormatError> {
    let found = read(dir)?;
    if let Some(found) = found
        && found > CURRENT
    {
        return Err(FormatError::Newer {
            path: dir.join(FILE),
            found,
            supported: CURRENT,
        });
    }
    Ok(found)
}

/// Records that the store in `dir` is in the current format (once opening
/// converted whatever was older).
pub(crate) fn mark_current(dir: &Path) -> Result<(), FormatError> {
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let io = |source| FormatError::Io {
        path: path.clone(),
        source,
    };
    std::fs::write(&tmp, format!("{PREFIX}{CURRENT}\n")).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_has_no_format_and_an_unmarked_one_is_format_0() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join("conf"), "sled").unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(0));
        mark_current(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(CURRENT));
    }

    #[test]
    fn a_newer_format_is_refused_saying_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), format!("{PREFIX}{}\n", CURRENT + 1)).unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("format {}", CURRENT + 1)), "{e}");
        assert!(e.contains("restore a backup"), "{e}");
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(matches!(
            check(dir.path()),
            Err(FormatError::Unreadable { .. })
        ));
    }
}
