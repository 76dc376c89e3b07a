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
//! A plugin that fails to load is reported and skipped; the others serve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::manifest::Manifest;
use crate::runtime::{LoadedPlugin, Runtime};

/// Why one plugin directory could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// The plugin's directory.
    pub dir: PathBuf,
    /// What went wrong, with how to fix it.
    pub reason: String,
}

/// The plugins currently serving, by name. Cheap to snapshot: workers take
/// an `Arc` of the current map, so a swap never disturbs a running call.
#[derive(Default)]
pub struct PluginSet {
    current: RwLock<Arc<BTreeMap<String, Arc<LoadedPlugin>>>>,
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
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**guard).clone();
        next.insert(plugin.manifest.name.clone(), Arc::new(plugin));
        *guard = Arc::new(next);
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

/// Loads every plugin under `dir` into `set`; returns what failed.
pub fn load_dir(runtime: &Runtime, dir: &Path, set: &PluginSet) -> Vec<LoadFailure> {
    let mut failures = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            failures.push(LoadFailure {
                dir: dir.to_owned(),
                reason: format!("cannot read the plugins directory: {e}"),
            });
            return failures;
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for plugin_dir in dirs {
        let manifest_path = plugin_dir.join("plugin.toml");
        if !manifest_path.exists() {
            continue;
        }
        let loaded = Manifest::load(&manifest_path)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if set.get(&m.name).is_some() {
                    return Err(format!("a plugin named `{}` is already loaded", m.name));
                }
                runtime.load(m).map_err(|e| e.to_string())
            });
        match loaded {
            Ok(plugin) => {
                tracing::info!(
                    plugin = %plugin.manifest.name,
                    version = %plugin.manifest.version,
                    cache = ?plugin.cache,
                    "plugin loaded"
                );
                set.insert(plugin);
            }
            Err(reason) => {
                tracing::error!(dir = %plugin_dir.display(), %reason, "plugin not loaded");
                failures.push(LoadFailure {
                    dir: plugin_dir,
                    reason,
                });
            }
        }
    }
    failures
}
