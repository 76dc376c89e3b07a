//! Where rotated OAuth refresh tokens are kept: the store's `credentials`
//! tree, one record per credential name. What a record holds is the
//! credentials layer's business; this tree stores bytes and makes them
//! durable through the store's committer, as events are.

use crate::{EventStore, StoreError};

/// The `credentials` tree.
#[derive(Clone)]
pub struct TokenTree {
    tree: sled::Tree,
    store: EventStore,
}

impl std::fmt::Debug for TokenTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenTree").finish_non_exhaustive()
    }
}

impl TokenTree {
    /// Opens the `credentials` tree of `store`.
    pub fn open(store: &EventStore) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.db().open_tree("credentials")?,
            store: store.clone(),
        })
    }

    /// The record kept for credential `name`.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Writes without waiting for the disk (for what a crash may lose).
    pub fn put(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        self.tree.insert(name.as_bytes(), record)?;
        Ok(())
    }

    /// Writes and returns once the record is on disk.
    pub async fn put_durable(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        self.put(name, record)?;
        // Not journaled: sled itself must be on disk.
        self.store.sync_all().await
    }
}
