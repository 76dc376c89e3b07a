//! [`Event`]: the event the host lends a plugin for one call.
//!
//! The host keeps the event; each field is copied into the plugin the first
//! time it is read and kept for the rest of the call. A plugin that looks
//! at `kind` and skips never copies the body.

use std::cell::OnceCell;

use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::bindings::fieldhook::plugin::types as wit;
use crate::{EntityRef, Header, PluginError};

/// A verified webhook as the host stored it, lent to the plugin for one
/// call. Read it through the methods; each reads its field from the host
/// once. In native unit tests, build one with `testing::event`.
pub struct Event<'a> {
    host: Option<&'a wit::Event>,
    pub(crate) id: OnceCell<String>,
    pub(crate) source: OnceCell<String>,
    pub(crate) vendor: OnceCell<String>,
    pub(crate) kind: OnceCell<String>,
    pub(crate) entity: OnceCell<Option<EntityRef>>,
    pub(crate) received_at_ms: OnceCell<u64>,
    pub(crate) occurred_at: OnceCell<Option<String>>,
    pub(crate) attempt: OnceCell<u32>,
    pub(crate) dedupe_key: OnceCell<Option<String>>,
    pub(crate) parsed: OnceCell<bool>,
    pub(crate) coalesced: OnceCell<u32>,
    pub(crate) headers: OnceCell<Vec<Header>>,
    pub(crate) body: OnceCell<Vec<u8>>,
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id())
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl<'a> Event<'a> {
    /// The event the host lent for this call; nothing is read yet.
    pub(crate) fn lent(host: &'a wit::Event) -> Self {
        Self::with_host(Some(host))
    }

    /// An event with nothing from a host: every field reads as its default
    /// until set (native tests).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn local() -> Event<'static> {
        Event::with_host(None)
    }

    fn with_host(host: Option<&'a wit::Event>) -> Self {
        Event {
            host,
            id: OnceCell::new(),
            source: OnceCell::new(),
            vendor: OnceCell::new(),
            kind: OnceCell::new(),
            entity: OnceCell::new(),
            received_at_ms: OnceCell::new(),
            occurred_at: OnceCell::new(),
            attempt: OnceCell::new(),
            dedupe_key: OnceCell::new(),
            parsed: OnceCell::new(),
            coalesced: OnceCell::new(),
            headers: OnceCell::new(),
            body: OnceCell::new(),
        }
    }

    /// The field in `cell`, read from the host on first use (`default`
    /// when there is no host: a native test that did not set it).
    fn field<'s, T>(
        &'s self,
        cell: &'s OnceCell<T>,
        read: impl FnOnce(&wit::Event) -> T,
        default: impl FnOnce() -> T,
    ) -> &'s T {
        cell.get_or_init(|| match self.host {
            Some(host) => read(host),
            None => default(),
        })
    }

    /// Host-assigned id, stable across retries and replays (`evt_...`).
    pub fn id(&self) -> &str {
        self.field(&self.id, wit::Event::id, String::new).as_str()
    }

    /// Name of the configured source the event arrived on.
    pub fn source(&self) -> &str {
        self.field(&self.source, wit::Event::source, String::new)
            .as_str()
    }

    /// Vendor of that source: `housecall-pro`, `standard-webhooks`, ...
    pub fn vendor(&self) -> &str {
        self.field(&self.vendor, wit::Event::vendor, String::new)
            .as_str()
    }

    /// Normalized kind, `<entity>.<change>` (`job.completed`), or `unknown`.
    pub fn kind(&self) -> &str {
        self.field(&self.kind, wit::Event::kind, || "unknown".into())
            .as_str()
    }

    /// The entity the event is about, when known.
    pub fn entity(&self) -> Option<&EntityRef> {
        self.field(&self.entity, wit::Event::entity, || None)
            .as_ref()
    }

    /// When the host received it, milliseconds since the Unix epoch.
    pub fn received_at_ms(&self) -> u64 {
        *self.field(&self.received_at_ms, wit::Event::received_at_ms, || 0)
    }

    /// When the vendor says it happened (vendor's own text), when given.
    pub fn occurred_at(&self) -> Option<&str> {
        self.field(&self.occurred_at, wit::Event::occurred_at, || None)
            .as_deref()
    }

    /// 1 on the first run of this plugin on this event, then 2, 3, ...
    pub fn attempt(&self) -> u32 {
        *self.field(&self.attempt, wit::Event::attempt, || 1)
    }

    /// The key the host deduplicated deliveries of this event on.
    pub fn dedupe_key(&self) -> Option<&str> {
        self.field(&self.dedupe_key, wit::Event::dedupe_key, || None)
            .as_deref()
    }

    /// False when the body was not the JSON the vendor documents (the host
    /// stored it anyway, raw).
    pub fn parsed(&self) -> bool {
        *self.field(&self.parsed, wit::Event::parsed, || true)
    }

    /// How many events this one stands for: more than 1 when its source
    /// coalesces bursts and this is the latest of one.
    pub fn coalesced(&self) -> u32 {
        *self.field(&self.coalesced, wit::Event::coalesced, || 1)
    }

    /// Request headers as received.
    pub fn headers(&self) -> &[Header] {
        self.field(&self.headers, wit::Event::headers, Vec::new)
            .as_slice()
    }

    /// The raw request body, byte for byte.
    pub fn body(&self) -> &[u8] {
        self.field(&self.body, wit::Event::body, Vec::new)
            .as_slice()
    }

    /// The first header called `name` (any case), when its value is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first header called `name` (any case), as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &h.value[..])
    }

    /// The body as UTF-8 text; a non-retryable error when it is not.
    pub fn body_text(&self) -> Result<&str, PluginError> {
        std::str::from_utf8(self.body()).map_err(|err| {
            PluginError::fatal(format!("event {}: body is not UTF-8: {err}", self.id()))
        })
    }

    /// The body parsed as any JSON value; a non-retryable error that says the
    /// body is not JSON when it is not.
    pub fn body_json(&self) -> Result<serde_json::Value, PluginError> {
        self.json()
    }

    /// The body deserialized into `T`; a non-retryable error that says
    /// whether the body is not JSON or not the shape `T` expects.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(self.body()).map_err(|err| {
            let what = match err.classify() {
                Category::Data => "does not have the expected shape",
                _ => "is not JSON",
            };
            PluginError::fatal(format!("event {}: body {what}: {err}", self.id()))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Header, testing};

    #[test]
    fn header_lookup_ignores_case_and_skips_non_utf8() {
        let event = testing::event("job.completed", "{}").with_headers(vec![
            Header {
                name: "X-Bin".into(),
                value: vec![0xff],
            },
            Header {
                name: "Content-Type".into(),
                value: b"application/json".to_vec(),
            },
        ]);
        assert_eq!(event.header("content-type"), Some("application/json"));
        assert_eq!(event.header("x-bin"), None);
        assert_eq!(event.header_bytes("X-BIN"), Some(&[0xff][..]));
        assert_eq!(event.header("missing"), None);
    }

    #[test]
    fn json_errors_are_fatal_and_say_why() {
        let err = testing::event("job.completed", "<xml/>")
            .body_json()
            .unwrap_err();
        assert!(!err.retryable);
        assert!(err.message.contains("is not JSON"), "{}", err.message);

        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Job {
            id: String,
        }
        let err = testing::event("job.completed", "{}")
            .json::<Job>()
            .unwrap_err();
        assert!(err.message.contains("expected shape"), "{}", err.message);
        assert!(err.message.contains("evt_test"), "{}", err.message);
    }
}
