//! A small key-value store per plugin, in one sled tree.
//!
//! Keys are namespaced `{plugin}\0{key}`, so no plugin can read or overwrite
//! another's. Each value carries its expiry; expired values read as absent
//! and are removed when met. Sizes are capped per value and per plugin.

use serde::{Deserialize, Serialize};

use fieldhook_core::time::now_ms;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key or value is over its size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The plugin's store is full.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The store could not be used.
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
}

/// Size limits of each plugin's store.
#[derive(Debug, Clone, Copy)]
pub struct KvLimits {
    /// Longest key, bytes.
    pub max_key_bytes: usize,
    /// Largest value, bytes.
    pub max_value_bytes: usize,
    /// Total of keys and values per plugin, bytes.
    pub max_total_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Value {
    expires_at_ms: Option<u64>,
    data: Vec<u8>,
}

/// The plugins' key-value stores.
#[derive(Debug, Clone)]
pub struct KvStore {
    tree: sled::Tree,
    limits: KvLimits,
}

impl KvStore {
    /// The plugins' stores in the store's `kv` tree.
    pub fn open(store: &crate::EventStore, limits: KvLimits) -> Result<Self, crate::StoreError> {
        Ok(Self::new(store.db().open_tree("kv")?, limits))
    }

    fn new(tree: sled::Tree, limits: KvLimits) -> Self {
        Self { tree, limits }
    }

    /// The same stores under other size limits (a reloaded configuration).
    pub fn with_limits(&self, limits: KvLimits) -> Self {
        Self::new(self.tree.clone(), limits)
    }

    fn key(plugin: &str, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(plugin.len() + 1 + key.len());
        k.extend_from_slice(plugin.as_bytes());
        k.push(0);
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The live value of `key`, if any.
    pub fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let k = Self::key(plugin, key);
        let Some(bytes) = self.tree.get(&k).map_err(unavailable)? else {
            return Ok(None);
        };
        let Ok(v) = postcard::from_bytes::<Value>(&bytes) else {
            return Ok(None);
        };
        if v.expires_at_ms.is_some_and(|at| at <= now_ms()) {
            self.tree.remove(&k).map_err(unavailable)?;
            return Ok(None);
        }
        Ok(Some(v.data))
    }

    /// Sets `key`, expiring after `ttl_ms` when given.
    pub fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<(), KvError> {
        let l = self.limits;
        if key.is_empty() || key.len() > l.max_key_bytes {
            return Err(KvError::TooLarge(format!(
                "key of {} bytes: keys are 1 to {} bytes",
                key.len(),
                l.max_key_bytes
            )));
        }
        if value.len() > l.max_value_bytes {
            return Err(KvError::TooLarge(format!(
                "value of {} bytes is over the {}-byte limit per value",
                value.len(),
                l.max_value_bytes
            )));
        }
        let k = Self::key(plugin, key);
        let old = self
            .tree
            .get(&k)
            .map_err(unavailable)?
            .map_or(0, |v| (k.len() + v.len()) as u64);
        let encoded = postcard::to_stdvec(&Value {
            expires_at_ms: ttl_ms.map(|t| now_ms().saturating_add(t)),
            data: value.to_vec(),
        })
        .map_err(|e| KvError::Unavailable(e.to_string()))?;
        let used = self.usage(plugin)?;
        let after = used - old + (k.len() + encoded.len()) as u64;
        if after > l.max_total_bytes {
            return Err(KvError::QuotaExceeded(format!(
                "this plugin's store would hold {after} bytes, over its {}-byte limit; delete keys or set TTLs",
                l.max_total_bytes
            )));
        }
        self.tree.insert(k, encoded).map_err(unavailable)?;
        Ok(())
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&self, plugin: &str, key: &str) -> Result<bool, KvError> {
        Ok(self
            .tree
            .remove(Self::key(plugin, key))
            .map_err(unavailable)?
            .is_some())
    }

    /// Bytes a plugin's store holds, dropping expired values on the way.
    fn usage(&self, plugin: &str) -> Result<u64, KvError> {
        let mut prefix = plugin.as_bytes().to_vec();
        prefix.push(0);
        let now = now_ms();
        let mut total = 0u64;
        for item in self.tree.scan_prefix(&prefix) {
            let (k, v) = item.map_err(unavailable)?;
            let expired = postcard::from_bytes::<Value>(&v)
                .map(|v| v.expires_at_ms.is_some_and(|at| at <= now))
                .unwrap_or(true);
            if expired {
                self.tree.remove(&k).map_err(unavailable)?;
            } else {
                total += (k.len() + v.len()) as u64;
            }
        }
        Ok(total)
    }
}

fn unavailable(e: sled::Error) -> KvError {
    KvError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(total: u64) -> KvStore {
        let db = sled::Config::new().temporary(true).open().expect("temp db");
        KvStore::new(
            db.open_tree("kv").expect("tree"),
            KvLimits {
                max_key_bytes: 16,
                max_value_bytes: 64,
                max_total_bytes: total,
            },
        )
    }

    #[test]
    fn values_are_namespaced_per_plugin() {
        let kv = store(10_000);
        kv.set("a", "k", b"from a", None).unwrap();
        kv.set("b", "k", b"from b", None).unwrap();
        assert_eq!(kv.get("a", "k").unwrap().as_deref(), Some(&b"from a"[..]));
        assert_eq!(kv.get("b", "k").unwrap().as_deref(), Some(&b"from b"[..]));
        assert!(kv.delete("a", "k").unwrap());
        assert_eq!(kv.get("a", "k").unwrap(), None);
        assert!(kv.get("b", "k").unwrap().is_some());
    }

    #[test]
    fn a_value_expires_after_its_ttl() {
        let kv = store(10_000);
        kv.set("a", "short", b"x", Some(1)).unwrap();
        kv.set("a", "long", b"y", Some(60_000)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(kv.get("a", "short").unwrap(), None);
        assert!(kv.get("a", "long").unwrap().is_some());
    }

    #[test]
    fn sizes_are_capped_per_value_and_per_plugin() {
        let kv = store(200);
        assert!(matches!(
            kv.set("a", "k", &[0; 65], None),
            Err(KvError::TooLarge(_))
        ));
        assert!(matches!(
            kv.set("a", &"k".repeat(17), b"", None),
            Err(KvError::TooLarge(_))
        ));
        let mut full = None;
        for i in 0..10 {
            if let Err(e) = kv.set("a", &format!("k{i}"), &[0; 60], None) {
                full = Some(e);
                break;
            }
        }
        assert!(matches!(full, Some(KvError::QuotaExceeded(_))), "{full:?}");
        // Overwriting a key does not count it twice; another plugin is unaffected.
        kv.set("a", "k0", &[1; 60], None).unwrap();
        kv.set("b", "k0", &[1; 60], None).unwrap();
    }
}
