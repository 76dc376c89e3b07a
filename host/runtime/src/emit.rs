//! Events a scheduled run emits, and where they go.
//!
//! The runtime does not store events itself: the pipeline hands a call an
//! [`Emitter`] that stores them through the same ingest path as webhooks
//! (dedupe included). Only scheduled calls get one; during `handle`,
//! `emit` fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use fieldhook_core::event::EntityRecord;

/// Most events one scheduled run may emit: a poll that finds more leaves
/// the rest for its next run (its watermark has not passed them).
pub const MAX_EMITS_PER_RUN: u32 = 1000;

/// An event a plugin emitted, as the host received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedEvent {
    /// Normalized kind.
    pub kind: String,
    /// The entity it is about.
    pub entity: Option<EntityRecord>,
    /// Vendor's occurred-at text.
    pub occurred_at: Option<String>,
    /// Dedupe key, checked against the source's other events.
    pub dedupe_key: String,
    /// Headers to store.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
}

/// What storing an emitted event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitted {
    /// Stored under a new id.
    Stored,
    /// An event with this source and key was already stored.
    Duplicate,
}

/// Why an event could not be stored; retryable or not, as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EmitError {
    /// What went wrong.
    pub message: String,
    /// Whether emitting again later may work.
    pub retryable: bool,
}

/// The future [`Emitter::emit`] returns.
pub type EmitFuture = Pin<Box<dyn Future<Output = Result<Emitted, EmitError>> + Send>>;

/// Stores events emitted by one plugin's scheduled run.
pub trait Emitter: Send + Sync {
    /// Stores `event` for `plugin`'s schedule `schedule`; resolves once it
    /// is durable (or found to be a duplicate).
    fn emit(&self, plugin: &str, schedule: &str, event: EmittedEvent) -> EmitFuture;
}

/// What a call may emit: set for scheduled calls only.
#[derive(Clone)]
pub(crate) struct EmitScope {
    pub(crate) emitter: Arc<dyn Emitter>,
    pub(crate) schedule: String,
    pub(crate) emitted: u32,
}
