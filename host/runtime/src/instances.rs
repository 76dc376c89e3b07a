//! Fresh or warm: how a plugin's calls get an instance.
//!
//! A fresh pooled instance costs tens of microseconds for a small Rust
//! guest, but milliseconds for a JS or Python guest whose start-up runs an
//! interpreter. Those reuse warm instances, replaced by the recycle policy.

use std::sync::Mutex;

use fieldhook_policy::manifest::{InstanceMode, Manifest};

/// Components larger than this reuse warm instances unless their manifest
/// says otherwise: they carry an interpreter whose start-up dominates a call.
pub const REUSE_ABOVE_BYTES: usize = 1024 * 1024;

/// Warm instances kept idle per plugin (one per concurrent worker is enough).
const MAX_IDLE: usize = 8;

/// How one plugin's calls get an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstancePolicy {
    /// A new instance per call.
    Fresh,
    /// Warm instances reused across calls.
    Reuse(Recycle),
}

/// When a reused instance is thrown away. A trap or timeout always does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recycle {
    /// After this many calls.
    pub after_calls: u32,
    /// Once its linear memory grew past this many bytes.
    pub memory_bytes: usize,
}

impl InstancePolicy {
    /// The manifest's choice, or the default for a component of this size.
    pub fn for_plugin(manifest: &Manifest, component_bytes: usize) -> Self {
        let mode = manifest
            .runtime
            .instances
            .unwrap_or(if component_bytes > REUSE_ABOVE_BYTES {
                InstanceMode::Reuse
            } else {
                InstanceMode::Fresh
            });
        match mode {
            InstanceMode::Fresh => InstancePolicy::Fresh,
            InstanceMode::Reuse => {
                let limit_mb = manifest.limits.memory_mb as usize;
                let mb = manifest
                    .runtime
                    .recycle_memory_mb
                    .map(|m| m as usize)
                    .unwrap_or((limit_mb * 3 / 4).max(1));
                InstancePolicy::Reuse(Recycle {
                    after_calls: manifest.runtime.recycle_after_calls,
                    memory_bytes: mb * 1024 * 1024,
                })
            }
        }
    }
}

/// Idle warm instances of one plugin version. Dropped with the plugin, so
/// a replaced version's instances go away with its last call.
pub(super) struct WarmPool<I> {
    idle: Mutex<Vec<Warm<I>>>,
}

/// A warm instance and how much it has served.
pub(super) struct Warm<I> {
    pub(super) instance: I,
    pub(super) calls: u32,
}

impl<I> Default for WarmPool<I> {
    fn default() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
        }
    }
}

impl<I> WarmPool<I> {
    /// An idle instance, most recently used first (its memory is hot).
    pub(super) fn take(&self) -> Option<Warm<I>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Returns an instance after a successful call, unless the policy
    /// retires it. Returns whether it was kept.
    pub(super) fn give_back(&self, warm: Warm<I>, recycle: Recycle, memory_bytes: usize) -> bool {
        if warm.calls >= recycle.after_calls || memory_bytes > recycle.memory_bytes {
            return false;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            return false;
        }
        idle.push(warm);
        true
    }

    /// Idle instances now.
    pub(super) fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::parse(
            &format!("name = \"p\"\nversion = \"1\"\n{extra}"),
            Path::new("/p/plugin.toml"),
        )
        .unwrap()
    }

    #[test]
    fn small_components_run_fresh_and_large_ones_reuse_by_default() {
        assert_eq!(
            InstancePolicy::for_plugin(&manifest(""), 200_000),
            InstancePolicy::Fresh
        );
        let big = InstancePolicy::for_plugin(&manifest(""), 12 * 1024 * 1024);
        assert_eq!(
            big,
            InstancePolicy::Reuse(Recycle {
                after_calls: 1000,
                memory_bytes: 48 * 1024 * 1024
            })
        );
    }

    #[test]
    fn the_manifest_overrides_the_size_default() {
        let m = manifest("[runtime]\ninstances = \"fresh\"\n");
        assert_eq!(
            InstancePolicy::for_plugin(&m, 12 * 1024 * 1024),
            InstancePolicy::Fresh
        );
        let m = manifest(
            "[runtime]\ninstances = \"reuse\"\nrecycle_after_calls = 3\nrecycle_memory_mb = 8\n",
        );
        assert_eq!(
            InstancePolicy::for_plugin(&m, 1000),
            InstancePolicy::Reuse(Recycle {
                after_calls: 3,
                memory_bytes: 8 * 1024 * 1024
            })
        );
    }

    #[test]
    fn an_instance_is_retired_after_its_calls_or_past_its_memory() {
        let pool = WarmPool::<()>::default();
        let r = Recycle {
            after_calls: 2,
            memory_bytes: 100,
        };
        assert!(pool.give_back(
            Warm {
                instance: (),
                calls: 1
            },
            r,
            100
        ));
        assert!(!pool.give_back(
            Warm {
                instance: (),
                calls: 2
            },
            r,
            10
        ));
        assert!(!pool.give_back(
            Warm {
                instance: (),
                calls: 1
            },
            r,
            101
        ));
        assert_eq!(pool.idle(), 1);
    }
}
