//! Typed views of each vendor's webhook body, as `docs/vendors/` describes
//! them.
//!
//! Each module reads one vendor's body into structs that borrow from the
//! event (parsing a 1 KiB body copies almost nothing), ignore fields they do
//! not know, make optional what the vendor may leave out, and keep the
//! vendor-specific record as [`RawJson`](crate::json::RawJson) where its
//! shape varies. The accessors on [`Event`] check the event's vendor first:
//!
//! | vendor (`event.vendor()`) | accessor | view |
//! |---|---|---|
//! | `servicem8` | [`Event::servicem8`] | [`servicem8::Notice`] |
//! | `servicetrade` | [`Event::servicetrade`] | [`servicetrade::Message`] |
//! | `housecall-pro` | [`Event::housecall_pro`] | [`housecall_pro::Envelope`] |
//! | `servicetitan` (incl. Scheduling Pro) | [`Event::servicetitan`] | [`servicetitan::Envelope`] |
//! | `jobber` | [`Event::jobber`] | [`jobber::Notice`] |
//! | `standard-webhooks` | [`Event::standard_webhooks`] | [`standard_webhooks::Payload`] |
//!
//! Every failure is a non-retryable [`PluginError`] that names the vendor
//! and what is missing: an event from another vendor, a body that is not
//! JSON, a field the vendor documents that is absent. Each view also has a
//! `parse(body)` that skips the vendor check, for bodies relayed through a
//! generic source.
//!
//! ```
//! use fieldhook_guest::testing;
//!
//! let event = testing::event_from(
//!     "jobber",
//!     "job.updated",
//!     r#"{"data":{"webHookEvent":{"topic":"JOB_UPDATE","appId":"app-1","accountId":"MQ==","itemId":"Z2lk","occurredAt":"2021-08-12T16:31:36-06:00"}}}"#,
//! );
//! let notice = event.jobber()?;
//! assert_eq!(notice.topic, "JOB_UPDATE");
//! assert_eq!(notice.item_id, "Z2lk");
//!
//! let err = event.housecall_pro().unwrap_err();
//! assert!(!err.retryable);
//! assert!(err.message.contains("not a Housecall Pro event"), "{}", err.message);
//! # Ok::<(), fieldhook_guest::PluginError>(())
//! ```

use serde::Deserialize;
use serde_json::error::Category;

use crate::{Event, PluginError};

pub mod housecall_pro;
pub mod jobber;
pub mod servicem8;
pub mod servicetitan;
pub mod servicetrade;
pub mod standard_webhooks;

/// What the error messages say about a vendor.
pub(crate) struct Vendor {
    /// `event.vendor()` of its sources.
    pub id: &'static str,
    /// Its name in messages.
    pub name: &'static str,
    /// The documented body, shown when a body does not match it.
    pub shape: &'static str,
}

impl Vendor {
    /// `body` deserialized into `T`; the error says whether the body is not
    /// JSON or lacks something, and shows the documented shape.
    pub(crate) fn parse<'a, T: Deserialize<'a>>(&self, body: &'a [u8]) -> Result<T, PluginError> {
        self.parse_seed(body, std::marker::PhantomData)
    }

    /// Like [`Vendor::parse`], with a seed that carries what to look for.
    pub(crate) fn parse_seed<'a, S: serde::de::DeserializeSeed<'a>>(
        &self,
        body: &'a [u8],
        seed: S,
    ) -> Result<S::Value, PluginError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        seed.deserialize(&mut de)
            .and_then(|value| de.end().map(|()| value))
            .map_err(|err| {
                let what = match err.classify() {
                    Category::Data => "does not have the expected shape",
                    _ => "is not JSON",
                };
                PluginError::fatal(format!(
                    "{} body {what}: {err}; expected {}",
                    self.name, self.shape
                ))
            })
    }

    /// A non-retryable error about this vendor's body.
    pub(crate) fn error(&self, what: impl std::fmt::Display) -> PluginError {
        PluginError::fatal(format!("{} {what}", self.name))
    }

    /// Checks that `event` comes from a source of this vendor, then reads its
    /// body with `parse`; errors name the event.
    pub(crate) fn view<'a, T>(
        &self,
        event: &'a Event<'_>,
        parse: impl FnOnce(&'a [u8]) -> Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        if event.vendor() != self.id {
            return Err(PluginError::fatal(format!(
                "event {}: not a {} event: it arrived on source `{}` of vendor `{}`, not `{}`",
                event.id(),
                self.name,
                event.source(),
                event.vendor(),
                self.id
            )));
        }
        parse(event.body()).map_err(|err| PluginError {
            message: format!("event {}: {}", event.id(), err.message),
            retryable: false,
        })
    }
}

/// The views, one accessor per vendor.
impl Event<'_> {
    /// The ServiceM8 notice (object or event webhook) of an event from a
    /// `servicem8` source.
    pub fn servicem8(&self) -> Result<servicem8::Notice<'_>, PluginError> {
        servicem8::VENDOR_INFO.view(self, servicem8::Notice::parse)
    }

    /// The ServiceTrade message of an event from a `servicetrade` source;
    /// [`servicetrade::Message::change_for`] picks this event's entity change.
    pub fn servicetrade(&self) -> Result<servicetrade::Message<'_>, PluginError> {
        servicetrade::VENDOR_INFO.view(self, servicetrade::Message::parse)
    }

    /// The Housecall Pro envelope of an event from a `housecall-pro` source.
    pub fn housecall_pro(&self) -> Result<housecall_pro::Envelope<'_>, PluginError> {
        housecall_pro::VENDOR_INFO.view(self, housecall_pro::Envelope::parse)
    }

    /// The ServiceTitan (or Scheduling Pro) envelope of an event from a
    /// `servicetitan` source.
    pub fn servicetitan(&self) -> Result<servicetitan::Envelope<'_>, PluginError> {
        servicetitan::VENDOR_INFO.view(self, servicetitan::Envelope::parse)
    }

    /// The Jobber notice (topic and item id) of an event from a `jobber`
    /// source.
    pub fn jobber(&self) -> Result<jobber::Notice<'_>, PluginError> {
        jobber::VENDOR_INFO.view(self, jobber::Notice::parse)
    }

    /// The Standard Webhooks payload of an event from a `standard-webhooks`
    /// source, with its `webhook-id` header.
    pub fn standard_webhooks(&self) -> Result<standard_webhooks::Payload<'_>, PluginError> {
        standard_webhooks::VENDOR_INFO.view(self, |body| {
            let mut payload = standard_webhooks::Payload::parse(body)?;
            payload.webhook_id = self.header("webhook-id").or_else(|| self.header("svix-id"));
            Ok(payload)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testing;

    #[test]
    fn an_event_of_another_vendor_is_refused_with_both_vendors_named() {
        let event = testing::event_from("servicem8", "job.updated", "{}");
        for err in [
            event.housecall_pro().map(|_| ()).unwrap_err(),
            event.jobber().map(|_| ()).unwrap_err(),
            event.servicetrade().map(|_| ()).unwrap_err(),
            event.servicetitan().map(|_| ()).unwrap_err(),
            event.standard_webhooks().map(|_| ()).unwrap_err(),
        ] {
            assert!(!err.retryable);
            assert!(
                err.message.starts_with("event evt_test: not a "),
                "{}",
                err.message
            );
            assert!(
                err.message.contains("vendor `servicem8`"),
                "{}",
                err.message
            );
        }
        let err = testing::event("job.updated", "{}").servicem8().unwrap_err();
        assert!(
            err.message.contains("not a ServiceM8 event")
                && err.message.contains("not `servicem8`"),
            "{}",
            err.message
        );
    }
}
