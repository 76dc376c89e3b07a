//! Unit-testing plugins on the build machine (`cargo test`, not WebAssembly).
//!
//! There the host imports do not exist, so [`crate::config`] reads the values
//! set here (per test thread), [`crate::log`] prints to stderr and
//! [`crate::http`] returns an error.
//!
//! ```
//! use fieldhook_guest::{config, testing};
//!
//! testing::set_config([("endpoint", "https://books.example.com/v1")]);
//! assert_eq!(config::get("endpoint").as_deref(), Some("https://books.example.com/v1"));
//! let event = testing::event("job.completed", r#"{"job":{"id":"job_1"}}"#);
//! assert_eq!(event.kind(), "job.completed");
//! ```

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;

use crate::{EntityRef, Event, Header};

thread_local! {
    static CONFIG: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    static KV: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
}

/// The events this thread emitted ([`crate::emit`]) since the last call,
/// oldest first; each dedupe key is stored once, as the host would.
pub fn emitted() -> Vec<crate::emit::NewEvent> {
    crate::emit::take_recorded()
}

/// Empties this thread's key-value store ([`crate::kv`]).
pub fn clear_kv() {
    KV.with(|kv| kv.borrow_mut().clear());
}

pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
    KV.with(|kv| kv.borrow().get(key).cloned())
}

pub(crate) fn kv_set(key: &str, value: &[u8]) {
    KV.with(|kv| kv.borrow_mut().insert(key.to_owned(), value.to_vec()));
}

pub(crate) fn kv_delete(key: &str) -> bool {
    KV.with(|kv| kv.borrow_mut().remove(key).is_some())
}

/// Replaces this thread's `[config]` values.
pub fn set_config<K: Into<String>, V: Into<String>>(entries: impl IntoIterator<Item = (K, V)>) {
    let entries = entries
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    CONFIG.with(|config| *config.borrow_mut() = entries);
}

/// An event as the host would lend it: id `evt_test`, source `test`,
/// vendor `test`, first attempt, no headers. Change it with the `with_*`
/// methods.
pub fn event(kind: &str, body: impl Into<Vec<u8>>) -> Event<'static> {
    Event::local()
        .with_id("evt_test")
        .with_source("test")
        .with_vendor("test")
        .with_kind(kind)
        .with_body(body)
}

/// An event from a source of `vendor` (`housecall-pro`, `servicetrade`,
/// ...), otherwise as [`event`]: what the [`crate::vendors`] views expect.
///
/// ```
/// use fieldhook_guest::testing;
///
/// let event = testing::event_from("housecall-pro", "job.completed", r#"{"event":"job.completed","job":{"id":"job_1"}}"#);
/// assert_eq!(event.housecall_pro()?.job()?.id, "job_1");
/// # Ok::<(), fieldhook_guest::PluginError>(())
/// ```
pub fn event_from(vendor: &str, kind: &str, body: impl Into<Vec<u8>>) -> Event<'static> {
    event(kind, body).with_vendor(vendor)
}

/// Builders for test events (native builds only).
impl Event<'static> {
    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = OnceCell::from(id.into());
        self
    }

    /// Sets the source name.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = OnceCell::from(source.into());
        self
    }

    /// Sets the vendor.
    pub fn with_vendor(mut self, vendor: impl Into<String>) -> Self {
        self.vendor = OnceCell::from(vendor.into());
        self
    }

    /// Sets the normalized kind.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = OnceCell::from(kind.into());
        self
    }

    /// Sets (or clears) the entity.
    pub fn with_entity(mut self, entity: Option<EntityRef>) -> Self {
        self.entity = OnceCell::from(entity);
        self
    }

    /// Sets when the host received it, ms since the Unix epoch.
    pub fn with_received_at_ms(mut self, ms: u64) -> Self {
        self.received_at_ms = OnceCell::from(ms);
        self
    }

    /// Sets (or clears) the vendor's occurred-at text.
    pub fn with_occurred_at(mut self, at: Option<&str>) -> Self {
        self.occurred_at = OnceCell::from(at.map(str::to_owned));
        self
    }

    /// Sets the attempt number.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = OnceCell::from(attempt);
        self
    }

    /// Sets (or clears) the dedupe key.
    pub fn with_dedupe_key(mut self, key: Option<&str>) -> Self {
        self.dedupe_key = OnceCell::from(key.map(str::to_owned));
        self
    }

    /// Sets whether the body parsed as the vendor's JSON.
    pub fn with_parsed(mut self, parsed: bool) -> Self {
        self.parsed = OnceCell::from(parsed);
        self
    }

    /// Sets how many events a coalesced burst stands for.
    pub fn with_coalesced(mut self, count: u32) -> Self {
        self.coalesced = OnceCell::from(count);
        self
    }

    /// Replaces the headers.
    pub fn with_headers(mut self, headers: Vec<Header>) -> Self {
        self.headers = OnceCell::from(headers);
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = OnceCell::from(body.into());
        self
    }
}

pub(crate) fn config_get(key: &str) -> Option<String> {
    CONFIG.with(|config| config.borrow().get(key).cloned())
}

pub(crate) fn config_entries() -> Vec<(String, String)> {
    CONFIG.with(|config| {
        config
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}
