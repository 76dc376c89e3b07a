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

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::Event;

thread_local! {
    static CONFIG: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    static KV: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
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

/// An event as the host would pass it: id `evt_test`, source `test`, vendor
/// `test`, first attempt, no headers. Change the public fields as needed.
pub fn event(kind: &str, body: impl Into<Vec<u8>>) -> Event {
    Event {
        id: "evt_test".into(),
        source: "test".into(),
        vendor: "test".into(),
        kind: kind.into(),
        entity: None,
        received_at_ms: 0,
        occurred_at: None,
        attempt: 1,
        headers: Vec::new(),
        body: body.into(),
    }
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
pub fn event_from(vendor: &str, kind: &str, body: impl Into<Vec<u8>>) -> Event {
    Event {
        vendor: vendor.into(),
        ..event(kind, body)
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
