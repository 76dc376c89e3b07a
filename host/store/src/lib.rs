//! Everything fieldhook keeps on disk, in one embedded sled database: the
//! only crate that names sled.
//!
//! - [`events`]: verified webhooks, made durable before the 2xx by the
//!   store's journal (concurrent requests share one write and one
//!   fdatasync; sled is written behind it), with the dedupe index and
//!   `store verify`. A message split into several events is stored once.
//! - [`queue`]: the [`TaskLog`](queue::TaskLog) interface (a log of leased
//!   tasks, shaped so a NATS JetStream engine can stand in) and its sled
//!   engine, [`Queue`](queue::Queue).
//! - [`kv`]: each plugin's key-value store, with quotas.
//! - [`tokens`]: rotated OAuth refresh tokens, synced like events.
//! - [`backup`]: online backup, a copy that opens like the store after a crash.
//! - [`health`]: whether the store can write (a full disk), for readiness.
//! - [`format`]: the store's format version, checked before anything else
//!   is opened.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use fieldhook_store::{EventStore, Ingested};
//! use std::sync::Arc;
//! use fieldhook_store::events::{Message, NewEvent};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = EventStore::open(dir.path()).unwrap();
//! let event = NewEvent {
//!     source: "hcp".into(),
//!     vendor: "housecall-pro".into(),
//!     kind: "job.completed".into(),
//!     entity: None,
//!     occurred_at: None,
//!     dedupe_key: Some("job-1".into()),
//!     parsed: true,
//!     received_at_ms: fieldhook_core::time::now_ms(),
//!     message: Arc::new(Message {
//!         headers: vec![],
//!         body: br#"{"event":"job.completed"}"#.to_vec(),
//!     }),
//! };
//! let window_ms = 60_000;
//! let first = store.ingest(vec![event.clone()], window_ms).await.unwrap();
//! let again = store.ingest(vec![event], window_ms).await.unwrap();
//! // Durable when `ingest` returns; the same dedupe key is stored once.
//! assert!(matches!(&first[0], Ingested::Stored(_)));
//! assert_eq!(again[0], Ingested::Duplicate(first[0].id().to_owned()));
//! # });
//! ```
#![deny(missing_docs)]

pub mod backup;
pub mod events;
pub mod format;
pub mod health;
mod journal;
pub mod kv;
pub mod queue;
pub mod tokens;

pub use events::{EventStore, Examined, GroupCommitStats, Ingested, StoreError};
pub use journal::JournalError;
