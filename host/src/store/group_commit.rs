//! Group commit: many writers, one fsync.
//!
//! A writer inserts into sled, then calls [`GroupCommit::sync`]. The flusher
//! task takes every waiter queued so far, flushes once, and answers them all.
//! A waiter queued while a flush runs is answered by the next one, so each
//! write is covered by a flush that started after it was inserted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Handle to the flusher task.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::UnboundedSender<Waiter>,
    stats: Arc<Counters>,
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    writes: AtomicU64,
}

/// How well writes were grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Flushes (fsyncs) performed.
    pub flushes: u64,
    /// Sync requests answered.
    pub writes: u64,
}

impl GroupCommit {
    /// Starts the flusher task for `db` on the current tokio runtime.
    pub fn start(db: sled::Db) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Counters::default());
        let task = tokio::spawn(flusher(db, rx, stats.clone()));
        Self {
            tx,
            stats,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        }
    }

    /// Drops this handle; when it was the last one, waits for the flusher
    /// to stop (it holds the database open).
    pub async fn close(self) {
        let GroupCommit { tx, task, .. } = self;
        drop(tx);
        if let Some(task) = Arc::into_inner(task) {
            let handle = task.into_inner().unwrap_or_else(|p| p.into_inner());
            if let Some(handle) = handle {
                let _ = handle.await;
            }
        }
    }

    /// Returns once everything inserted before this call is durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| StoreError::Flush("the flusher task has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Flush("the flusher task has stopped".into()))?
            .map_err(StoreError::Flush)
    }

    /// Counters since start.
    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            flushes: self.stats.flushes.load(Ordering::Relaxed),
            writes: self.stats.writes.load(Ordering::Relaxed),
        }
    }
}

async fn flusher(db: sled::Db, mut rx: mpsc::UnboundedReceiver<Waiter>, stats: Arc<Counters>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let db = db.clone();
        let result = match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("flush task failed: {e}")),
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = batch.len(), "store flush failed");
        }
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for waiter in batch.drain(..) {
            // A waiter that gave up (client disconnected) is fine to skip.
            let _ = waiter.send(result.clone());
        }
    }
}
