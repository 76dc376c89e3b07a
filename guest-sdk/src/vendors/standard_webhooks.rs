//! Standard Webhooks (`vendor = "standard-webhooks"`; Svix and many SaaS).
//!
//! ```json
//! {"type":"invoice.paid","timestamp":"2025-06-12T21:47:09Z","data":{...}}
//! ```
//!
//! The payload's `type` is the event's kind; `data` is the sender's own
//! record, read with [`Payload::data_as`]. The `webhook-id` header is
//! stable across the sender's retries.
//!
//! ```
//! use fieldhook_guest::{Header, testing};
//!
//! #[derive(serde::Deserialize)]
//! struct Invoice<'a> {
//!     #[serde(borrow)]
//!     id: &'a str,
//!     amount: i64,
//! }
//!
//! let event = testing::event_from("standard-webhooks", "invoice.paid", r#"{"type":"invoice.paid","timestamp":"2025-06-12T21:47:09Z","data":{"id":"inv_1","amount":24500}}"#)
//!     .with_headers(vec![Header { name: "webhook-id".into(), value: b"msg_p5jXN8AQM9LWM0D4loKWxJek".to_vec() }]);
//! let payload = event.standard_webhooks()?;
//! assert_eq!(payload.kind, "invoice.paid");
//! assert_eq!(payload.webhook_id, Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
//! let invoice: Invoice<'_> = payload.data_as()?;
//! assert_eq!((invoice.id, invoice.amount), ("inv_1", 24500));
//! # Ok::<(), fieldhook_guest::PluginError>(())
//! ```

use serde::Deserialize;

use super::Vendor;
use crate::PluginError;
use crate::json::{RawJson, Text};

/// `event.vendor()` of Standard Webhooks sources.
pub const VENDOR: &str = "standard-webhooks";

pub(crate) const VENDOR_INFO: Vendor = Vendor {
    id: VENDOR,
    name: "Standard Webhooks",
    shape: r#"{"type":"invoice.paid","timestamp":"...","data":{...}}"#,
};

/// A Standard Webhooks payload.
#[derive(Debug, Clone, Deserialize)]
pub struct Payload<'a> {
    /// The event type: `invoice.paid`, ...
    #[serde(borrow, rename = "type")]
    pub kind: Text<'a>,
    /// When it happened, as the sender writes it.
    #[serde(borrow, default)]
    pub timestamp: Option<Text<'a>>,
    /// The sender's record, as sent.
    #[serde(borrow, default)]
    pub data: Option<RawJson<'a>>,
    /// The `webhook-id` (or `svix-id`) header, when the payload was read
    /// from an event.
    #[serde(skip)]
    pub webhook_id: Option<&'a str>,
}

impl<'a> Payload<'a> {
    /// Reads a Standard Webhooks body without checking the event's vendor
    /// (`webhook_id` stays `None`).
    pub fn parse(body: &'a [u8]) -> Result<Self, PluginError> {
        VENDOR_INFO.parse(body)
    }

    /// `data`, or an error saying it is missing.
    pub fn data(&self) -> Result<RawJson<'a>, PluginError> {
        self.data
            .filter(|d| !d.is_null())
            .ok_or_else(|| VENDOR_INFO.error(format!("`{}` payload has no `data`", self.kind)))
    }

    /// `data` deserialized into `T` (a plugin's own struct, which may borrow
    /// from the body).
    pub fn data_as<T: Deserialize<'a>>(&self) -> Result<T, PluginError> {
        self.data()?.parse().map_err(|err| {
            VENDOR_INFO.error(format!(
                "`{}` data does not have the expected shape: {err}",
                self.kind
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Header, testing};

    /// The body of the public test vector of shared/vendors.md has no `type`.
    const PUBLIC_BODY: &str = r#"{"test": 2432232314}"#;

    fn event(body: &str) -> crate::Event<'static> {
        testing::event_from("standard-webhooks", "unknown", body).with_headers(vec![Header {
            name: "Webhook-Id".into(),
            value: b"msg_p5jXN8AQM9LWM0D4loKWxJek".to_vec(),
        }])
    }

    #[test]
    fn a_payload_has_its_type_timestamp_data_and_webhook_id() {
        let event = event(
            r#"{"type":"job.completed","timestamp":"2025-06-12T21:47:09Z","data":{"id":"job_1"}}"#,
        );
        let payload = event.standard_webhooks().unwrap();
        assert_eq!(payload.kind, "job.completed");
        assert_eq!(payload.timestamp.as_deref(), Some("2025-06-12T21:47:09Z"));
        assert_eq!(payload.webhook_id, Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
        let data = payload.data().unwrap();
        assert_eq!(
            data.get("id").and_then(|id| id.as_str()).as_deref(),
            Some("job_1")
        );
    }

    #[test]
    fn a_malformed_payload_says_what_is_missing() {
        let err = event(PUBLIC_BODY).standard_webhooks().unwrap_err();
        assert!(!err.retryable);
        assert!(
            err.message.starts_with("event evt_test: Standard Webhooks body does not have the expected shape: missing field `type`"),
            "{}",
            err.message
        );

        let event = event(r#"{"type":"job.completed","data":null}"#);
        let payload = event.standard_webhooks().unwrap();
        let err = payload.data_as::<serde_json::Value>().unwrap_err();
        assert_eq!(
            err.message,
            "Standard Webhooks `job.completed` payload has no `data`"
        );

        let payload = super::Payload::parse(br#"{"type":"job.completed","data":[1]}"#).unwrap();
        let err = payload
            .data_as::<std::collections::BTreeMap<String, i64>>()
            .unwrap_err();
        assert!(
            err.message
                .contains("`job.completed` data does not have the expected shape"),
            "{}",
            err.message
        );
    }
}
