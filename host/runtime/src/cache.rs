//! Compiled-code cache: compiling a component takes milliseconds for Rust
//! and 10+ seconds for JS or Python, so compiled code is kept on disk keyed by
//! the component's content hash and the engine's settings.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct CodeCache {
    dir: PathBuf,
}

/// Whether a load hit the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from disk.
    Hit,
    /// Compiled (and written to disk for next time).
    Compiled,
}

impl CodeCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn path_for(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut h = Sha256::new();
        h.update(bytes);
        let content = hex::encode(h.finalize());
        let mut e = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut e);
        let engine_key = std::hash::Hasher::finish(&e);
        self.dir.join(format!("{content}-{engine_key:016x}.cwasm"))
    }

    /// Loads a component, from the cache when it holds a compatible compile.
    #[allow(unsafe_code)] // deserializing compiled code; see the SAFETY note
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.path_for(engine, bytes);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash, into a directory
            // owned by the daemon; wasmtime still checks its header.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled-code cache entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled-code cache");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize()?;
        // Write then rename, so a crash never leaves a half-written entry.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
