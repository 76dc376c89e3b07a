//! Helpers on the generated [`Event`] record.

use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::{EntityRef, Event, PluginError};

impl Event {
    /// Host-assigned id, stable across retries and replays (`evt_...`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Name of the configured source the event arrived on.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Vendor of that source: `housecall-pro`, `standard-webhooks`, ...
    pub fn vendor(&self) -> &str {
        &self.vendor
    }

    /// Normalized kind, `<entity>.<change>` (`job.completed`), or `unknown`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The entity the event is about, when known.
    pub fn entity(&self) -> Option<&EntityRef> {
        self.entity.as_ref()
    }

    /// When the vendor says it happened (vendor's own text), when given.
    pub fn occurred_at(&self) -> Option<&str> {
        self.occurred_at.as_deref()
    }

    /// 1 on the first run of this plugin on this event, then 2, 3, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The raw request body, byte for byte.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The first header called `name` (any case), when its value is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first header called `name` (any case), as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &h.value[..])
    }

    /// The body as UTF-8 text; a non-retryable error when it is not.
    pub fn body_text(&self) -> Result<&str, PluginError> {
        std::str::from_utf8(&self.body).map_err(|err| {
            PluginError::fatal(format!("event {}: body is not UTF-8: {err}", self.id))
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
        serde_json::from_slice(&self.body).map_err(|err| {
            let what = match err.classify() {
                Category::Data => "does not have the expected shape",
                _ => "is not JSON",
            };
            PluginError::fatal(format!("event {}: body {what}: {err}", self.id))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Header, testing};

    #[test]
    fn header_lookup_ignores_case_and_skips_non_utf8() {
        let mut event = testing::event("job.completed", "{}");
        event.headers = vec![
            Header {
                name: "X-Bin".into(),
                value: vec![0xff],
            },
            Header {
                name: "Content-Type".into(),
                value: b"application/json".to_vec(),
            },
        ];
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
