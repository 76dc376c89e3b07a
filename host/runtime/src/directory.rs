//! The set of loaded plugins, read from the plugins directory.
//!
//! Layout: one sub-directory per plugin, holding `plugin.toml` and the
//! component it names:
//!
//! ```text
//! plugins/
//!   accounting-sync/
//!     plugin.toml
//!     accounting_sync.wasm
//! ```
//!
//! [`PluginSet::sync`] brings the set in line with the directory: new
//! plugins are added, changed ones replaced, removed ones dropped. A plugin
//! that fails to load (bad manifest, component that does not compile or does
//! not fit the WIT world) is reported per directory ([`PluginSet::failures`])
//! and never replaces the version serving. [`watch`] runs `sync` whenever the
//! directory settles after a change, so plugins are hot-loaded.

mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use sha2::{Digest, Sha256};

use crate::{LoadedPlugin, Runtime};
use fieldhook_policy::manifest::Manifest;

pub use watch::{DEBOUNCE, Watcher, watch};

/// Why one plugin directory could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// The plugin's directory.
    pub dir: PathBuf,
    /// What went wrong, with how to fix it.
    pub reason: String,
    /// The plugin this directory keeps serving (its previous version)
    /// while its new content fails.
    pub serving: Option<String>,
}

/// The plugins currently serving, by name. Cheap to snapshot: workers take
/// an `Arc` of the current map, so a swap never disturbs a running call.
#[derive(Default)]
pub struct PluginSet {
    current: RwLock<Arc<BTreeMap<String, Arc<LoadedPlugin>>>>,
    /// What each directory last produced; held while syncing, so syncs
    /// never interleave.
    dirs: Mutex<BTreeMap<PathBuf, DirState>>,
    /// Current failures by directory.
    failures: RwLock<BTreeMap<PathBuf, LoadFailure>>,
}

/// What one plugin directory last produced.
#[derive(Debug, Default)]
struct DirState {
    /// Hash of the manifest and component last tried; unchanged content is
    /// not tried again, whether it loaded or failed.
    fingerprint: Option<[u8; 32]>,
    /// The plugin this directory serves.
    serving: Option<String>,
}

/// What one [`PluginSet::sync`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Plugins that started serving (new or replaced), by name.
    pub loaded: Vec<String>,
    /// Plugins that stopped serving because their directory went away.
    pub removed: Vec<String>,
    /// Directories that failed this time.
    pub failed: Vec<LoadFailure>,
}
impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.snapshot().keys()).finish()
    }
}

impl PluginSet {
    /// The plugins serving now.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<LoadedPlugin>>> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// One plugin by name.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.snapshot().get(name).cloned()
    }

    /// Adds or replaces a plugin.
    pub fn insert(&self, plugin: LoadedPlugin) {
        let name = plugin.manifest.name.clone();
        self.update(|next| {
            next.insert(name, Arc::new(plugin));
        });
    }

    /// Stops serving a plugin; calls already running finish.
    pub fn remove(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        let mut removed = None;
        self.update(|next| removed = next.remove(name));
        removed
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, Arc<LoadedPlugin>>)) {
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**guard).clone();
        change(&mut next);
        *guard = Arc::new(next);
    }

    /// The plugin directories that failed to load, with why. A directory
    /// listed here may still serve its previous version.
    pub fn failures(&self) -> Vec<LoadFailure> {
        let failures = self.failures.read().unwrap_or_else(|p| p.into_inner());
        failures.values().cloned().collect()
    }

    /// Brings the set in line with `dir`: loads new and changed plugin
    /// directories, drops the plugins of removed ones. A directory whose new
    /// content fails keeps serving what it served.
    pub fn sync(&self, runtime: &Runtime, dir: &Path) -> SyncReport {
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = SyncReport::default();
        let found = match plugin_dirs(dir) {
            Ok(found) => found,
            Err(e) => {
                let failure = LoadFailure {
                    dir: dir.to_owned(),
                    reason: format!("cannot read the plugins directory: {e}"),
                    serving: None,
                };
                tracing::error!(dir = %dir.display(), reason = %failure.reason, "plugins not loaded");
                self.set_failure(failure.clone());
                report.failed.push(failure);
                return report;
            }
        };
        self.clear_failure(dir);

        let gone: Vec<PathBuf> = dirs
            .keys()
            .filter(|d| !found.contains(d))
            .cloned()
            .collect();
        for d in gone {
            if let Some(name) = dirs.remove(&d).and_then(|s| s.serving) {
                self.remove(&name);
                tracing::info!(plugin = %name, dir = %d.display(), "plugin removed");
                report.removed.push(name);
            }
            self.clear_failure(&d);
        }

        for d in found {
            let state = dirs.entry(d.clone()).or_default();
            let serving = state.serving.clone();
            let candidate = match Candidate::read(&d) {
                Ok(c) => c,
                Err(reason) => {
                    // Unreadable (often: still being written); retried on
                    // the next change.
                    state.fingerprint = None;
                    report
                        .failed
                        .push(self.fail(&d, reason, serving.as_deref()));
                    continue;
                }
            };
            if state.fingerprint == Some(candidate.fingerprint) {
                continue;
            }
            state.fingerprint = Some(candidate.fingerprint);
            let manifest = match candidate.manifest {
                Ok(m) => m,
                Err(reason) => {
                    report
                        .failed
                        .push(self.fail(&d, reason, serving.as_deref()));
                    continue;
                }
            };
            let name = manifest.name.clone();
            let owner = self.owner_of(&dirs, &name, &d);
            if let Some(other) = owner {
                let reason = format!(
                    "a plugin named `{name}` is already loaded from {}; give this one another name",
                    other.display()
                );
                report
                    .failed
                    .push(self.fail(&d, reason, serving.as_deref()));
                continue;
            }
            match runtime.load_bytes(manifest, &candidate.component) {
                Ok(plugin) => {
                    tracing::info!(
                        plugin = %plugin.manifest.name,
                        version = %plugin.manifest.version,
                        wit = %plugin.wit_version,
                        instances = ?plugin.instances,
                        cache = ?plugin.cache,
                        replaced = serving.is_some(),
                        "plugin loaded"
                    );
                    if let Some(old) = serving.as_deref().filter(|old| *old != name) {
                        self.remove(old);
                    }
                    self.insert(plugin);
                    self.clear_failure(&d);
                    if let Some(s) = dirs.get_mut(&d) {
                        s.serving = Some(name.clone());
                    }
                    report.loaded.push(name);
                }
                Err(e) => report
                    .failed
                    .push(self.fail(&d, e.to_string(), serving.as_deref())),
            }
        }
        report
    }

    /// The directory other than `dir` that serves `name`, if any.
    fn owner_of(
        &self,
        dirs: &BTreeMap<PathBuf, DirState>,
        name: &str,
        dir: &Path,
    ) -> Option<PathBuf> {
        dirs.iter()
            .find(|(d, s)| d.as_path() != dir && s.serving.as_deref() == Some(name))
            .map(|(d, _)| d.clone())
    }

    fn fail(&self, dir: &Path, reason: String, serving: Option<&str>) -> LoadFailure {
        match serving {
            Some(plugin) => tracing::error!(
                dir = %dir.display(), %reason, %plugin,
                "plugin not loaded; the previous version keeps serving"
            ),
            None => tracing::error!(dir = %dir.display(), %reason, "plugin not loaded"),
        }
        let failure = LoadFailure {
            dir: dir.to_owned(),
            reason,
            serving: serving.map(str::to_owned),
        };
        self.set_failure(failure.clone());
        failure
    }

    fn set_failure(&self, failure: LoadFailure) {
        let mut failures = self.failures.write().unwrap_or_else(|p| p.into_inner());
        failures.insert(failure.dir.clone(), failure);
    }

    fn clear_failure(&self, dir: &Path) {
        let mut failures = self.failures.write().unwrap_or_else(|p| p.into_inner());
        failures.remove(dir);
    }

    /// Names of the plugins subscribed to an event.
    pub fn subscribers(&self, source: &str, kind: &str) -> Vec<String> {
        self.snapshot()
            .values()
            .filter(|p| p.manifest.subscribes_to(source, kind))
            .map(|p| p.manifest.name.clone())
            .collect()
    }
}

/// Loads every plugin under `dir` into `set`; returns the directories that
/// are failing (including ones a concurrent sync already tried).
pub fn load_dir(runtime: &Runtime, dir: &Path, set: &PluginSet) -> Vec<LoadFailure> {
    set.sync(runtime, dir);
    set.failures()
}

/// Sub-directories holding a `plugin.toml`. Hidden ones (`.staging/`) are
/// skipped, so a plugin can be assembled there and renamed into place.
fn plugin_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.join("plugin.toml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// One directory's content, read once and hashed.
struct Candidate {
    fingerprint: [u8; 32],
    manifest: Result<Manifest, String>,
    component: Vec<u8>,
}

impl Candidate {
    /// Reads the manifest and, when it parses, its component. `Err` when a
    /// file cannot be read at all.
    fn read(dir: &Path) -> Result<Self, String> {
        let manifest_path = dir.join("plugin.toml");
        let text = std::fs::read(&manifest_path)
            .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
        let mut hash = Sha256::new();
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(&text);
        let manifest = std::str::from_utf8(&text)
            .map_err(|_| format!("{} is not UTF-8", manifest_path.display()))
            .and_then(|t| Manifest::parse(t, &manifest_path).map_err(|e| e.to_string()));
        let component = match &manifest {
            Ok(m) => std::fs::read(&m.component).map_err(|e| {
                format!(
                    "cannot read component {} (named by plugin.toml `component`): {e}",
                    m.component.display()
                )
            })?,
            Err(_) => Vec::new(),
        };
        hash.update(&component);
        Ok(Self {
            fingerprint: hash.finalize().into(),
            manifest,
            component,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodeCache;
    use fieldhook_capabilities::{Capabilities, Sandbox};

    fn plugin_dir(root: &Path, dir: &str, manifest: &str, component: &[u8]) -> PathBuf {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("plugin.toml"), manifest).unwrap();
        std::fs::write(d.join("plugin.wasm"), component).unwrap();
        d
    }

    #[test]
    fn failures_are_kept_per_directory_until_the_directory_is_fixed_or_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(
            CodeCache::new(&tmp.path().join("compiled")),
            Arc::new(Capabilities::offline(Sandbox::default())),
        )
        .unwrap();
        let root = tmp.path().join("plugins");
        let empty_component = b"\0asm\x0d\0\x01\0";
        let bad = plugin_dir(
            &root,
            "bad-manifest",
            "name = \"Bad Name\"\nversion = \"1\"\n",
            empty_component,
        );
        let alien = plugin_dir(
            &root,
            "alien",
            "name = \"alien\"\nversion = \"1\"\n",
            empty_component,
        );
        let set = PluginSet::default();

        let report = set.sync(&runtime, &root);
        assert!(report.loaded.is_empty());
        let failures = set.failures();
        assert_eq!(
            failures.iter().map(|f| f.dir.clone()).collect::<Vec<_>>(),
            vec![alien.clone(), bad.clone()]
        );
        assert!(
            failures[0]
                .reason
                .contains("does not export `fieldhook:plugin/handler`"),
            "{failures:?}"
        );
        assert!(failures[1].reason.contains("Bad Name"), "{failures:?}");

        // Unchanged content is not retried, and stays reported.
        assert!(set.sync(&runtime, &root).failed.is_empty());
        assert_eq!(set.failures().len(), 2);

        std::fs::remove_dir_all(&bad).unwrap();
        set.sync(&runtime, &root);
        assert_eq!(
            set.failures()
                .iter()
                .map(|f| f.dir.clone())
                .collect::<Vec<_>>(),
            vec![alien]
        );
        assert!(set.snapshot().is_empty());
    }

    #[test]
    fn hidden_directories_are_staging_areas_and_not_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(
            CodeCache::new(&tmp.path().join("compiled")),
            Arc::new(Capabilities::offline(Sandbox::default())),
        )
        .unwrap();
        let root = tmp.path().join("plugins");
        plugin_dir(
            &root,
            ".staging",
            "name = \"x\"\nversion = \"1\"\n",
            b"half",
        );
        let set = PluginSet::default();
        let report = set.sync(&runtime, &root);
        assert_eq!(report, SyncReport::default());
        assert!(set.failures().is_empty());
    }
}
