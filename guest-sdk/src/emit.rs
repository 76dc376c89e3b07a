//! Events a scheduled run found by polling, stored by the host as if a
//! webhook had brought them on the schedule's `source`.
//!
//! ```no_run
//! # fn f() -> Result<(), fieldhook_guest::PluginError> {
//! use fieldhook_guest::emit::{self, Emitted, NewEvent};
//!
//! let job = serde_json::json!({"id": 42, "status": "completed"});
//! let event = NewEvent::new("job.updated", "job:42:1700000000")
//!     .entity("job", "42")
//!     .json(&job);
//! match emit::emit(event)? {
//!     Emitted::Stored => {}    // new: the source's plugins will see it
//!     Emitted::Duplicate => {} // a webhook (or an earlier run) brought it
//! }
//! # Ok(()) }
//! ```
//!
//! `emit` returns once the event is durable, so a watermark moved after it
//! never passes an event that is not stored. Outside WebAssembly the events
//! are kept per test thread: read them with `testing::emitted`.

use serde::Serialize;

use crate::bindings::fieldhook::plugin::types as wire;
use crate::{EntityRef, Header, PluginError};

/// What the host did with an emitted event.
pub use crate::bindings::fieldhook::plugin::types::Emitted;

/// An event to emit: kind and dedupe key, plus what the source's events
/// carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Normalized kind, `<entity>.<change>`.
    pub kind: String,
    /// The key the source's webhooks carry for the same change.
    pub dedupe_key: String,
    /// The entity the event is about.
    pub entity: Option<EntityRef>,
    /// When the vendor says it happened.
    pub occurred_at: Option<String>,
    /// Headers to store with it.
    pub headers: Vec<Header>,
    /// The body.
    pub body: Vec<u8>,
}

impl NewEvent {
    /// An event of `kind`, deduplicated on `dedupe_key`, with an empty body.
    pub fn new(kind: impl Into<String>, dedupe_key: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            dedupe_key: dedupe_key.into(),
            entity: None,
            occurred_at: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The entity it is about.
    pub fn entity(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.entity = Some(EntityRef {
            kind: kind.into(),
            id: id.into(),
            url: None,
        });
        self
    }

    /// When the vendor says it happened.
    pub fn occurred_at(mut self, at: impl Into<String>) -> Self {
        self.occurred_at = Some(at.into());
        self
    }

    /// The body, as bytes.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The body, as JSON, with a `content-type` header.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        // Serialising a value the plugin built cannot fail for JSON maps
        // with string keys; a failure leaves the body empty.
        self.body = serde_json::to_vec(value).unwrap_or_default();
        self.headers
            .retain(|h| !h.name.eq_ignore_ascii_case("content-type"));
        self.headers.push(Header {
            name: "content-type".into(),
            value: b"application/json".to_vec(),
        });
        self
    }

    #[cfg_attr(
        not(target_arch = "wasm32"),
        allow(dead_code, reason = "the native build records events instead")
    )]
    pub(crate) fn into_wire(self) -> wire::NewEvent {
        wire::NewEvent {
            kind: self.kind,
            entity: self.entity,
            occurred_at: self.occurred_at,
            dedupe_key: self.dedupe_key,
            headers: self.headers,
            body: self.body,
        }
    }
}

/// Stores `event` on the schedule's source and returns once it is durable.
/// Only a scheduled run may emit; from `handle` it fails (not retryable).
pub fn emit(event: NewEvent) -> Result<Emitted, PluginError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::fieldhook::plugin::events::emit(&event.into_wire());
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(record(event));
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    /// Native unit tests: what this thread emitted, each dedupe key once,
    /// as the host would store it ([`crate::testing::emitted`]).
    static RECORDED: std::cell::RefCell<Vec<NewEvent>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
fn record(event: NewEvent) -> Emitted {
    RECORDED.with(|r| {
        let mut r = r.borrow_mut();
        if r.iter().any(|x| x.dedupe_key == event.dedupe_key) {
            return Emitted::Duplicate;
        }
        r.push(event);
        Emitted::Stored
    })
}

/// Takes what this thread emitted so far (native unit tests).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn take_recorded() -> Vec<NewEvent> {
    RECORDED.with(|r| std::mem::take(&mut *r.borrow_mut()))
}
