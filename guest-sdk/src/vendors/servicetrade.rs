//! ServiceTrade (`vendor = "servicetrade"`): a firehose of entity changes,
//! several per message.
//!
//! ```json
//! {"messageId":"<uuid>","timestamp":"1401833057","data":[{"action":"updated","timestamp":1401833052,
//!  "userId":1234,"entity":{"type":"appointment","id":34872,"uri":"https://api.servicetrade.com/api/appointment/34872"},
//!  "changeset":[{"field":"status","oldValue":"scheduled","newValue":"completed"}]}]}
//! ```
//!
//! The host stores one event per changed entity, each with the whole
//! message: [`Message::change_for`] picks the change of the event at hand.
//! Fetch the full record with a `GET` of the entity's `uri` (ServiceTrade
//! wraps it in `{"data": ...}`).
//!
//! ```
//! use fieldhook_guest::testing;
//!
//! let event = testing::event_from("servicetrade", "appointment.updated", r#"{"messageId":"6f1d","timestamp":"1401833057","data":[{"action":"updated","timestamp":1401833052,"userId":1234,"entity":{"type":"appointment","id":34872,"uri":"https://api.servicetrade.com/api/appointment/34872"},"changeset":[{"field":"status","oldValue":"scheduled","newValue":"completed"}]}]}"#);
//! let message = event.servicetrade()?;
//! let change = message.change_for(&event)?;
//! assert_eq!(change.entity.id, "34872");
//! let status = change.field("status").expect("status changed");
//! assert_eq!(status.new_str().as_deref(), Some("completed"));
//! # Ok::<(), fieldhook_guest::PluginError>(())
//! ```

use std::borrow::Cow;

use serde::Deserialize;

use super::Vendor;
use crate::json::{Id, RawJson, Text};
use crate::{Event, PluginError};

/// `event.vendor()` of ServiceTrade sources.
pub const VENDOR: &str = "servicetrade";

pub(crate) const VENDOR_INFO: Vendor = Vendor {
    id: VENDOR,
    name: "ServiceTrade",
    shape: r#"{"messageId":"...","timestamp":"<seconds>","data":[{"action":"updated","timestamp":<seconds>,"entity":{"type":"job","id":1,"uri":"..."},"changeset":[{"field":"status","oldValue":..,"newValue":..}]}]}"#,
};

/// One ServiceTrade message: a batch of entity changes. Messages may arrive
/// out of order and more than once.
#[derive(Debug, Clone, Deserialize)]
pub struct Message<'a> {
    /// The message's id.
    #[serde(borrow, rename = "messageId")]
    pub message_id: Text<'a>,
    /// When the message was sent: Unix seconds as a string.
    #[serde(borrow, default)]
    pub timestamp: Option<Text<'a>>,
    /// The changes, in the order sent.
    #[serde(borrow)]
    pub data: Vec<Change<'a>>,
}

/// One entity's change.
#[derive(Debug, Clone, Deserialize)]
pub struct Change<'a> {
    /// `created`, `updated` or `deleted`.
    #[serde(borrow)]
    pub action: Text<'a>,
    /// When it changed: Unix seconds.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// The ServiceTrade user who made the change.
    #[serde(default, rename = "userId")]
    pub user_id: Option<i64>,
    /// The entity that changed.
    #[serde(borrow)]
    pub entity: Entity<'a>,
    /// The fields that changed, old and new values (may be empty).
    #[serde(borrow, default)]
    pub changeset: Vec<FieldChange<'a>>,
}

/// The entity a change is about.
#[derive(Debug, Clone, Deserialize)]
pub struct Entity<'a> {
    /// Entity type: `job`, `appointment`, `jobitem`, ...
    #[serde(borrow, rename = "type")]
    pub kind: Text<'a>,
    /// Its id (an integer).
    #[serde(borrow)]
    pub id: Id<'a>,
    /// Where `GET` fetches it.
    #[serde(borrow, default)]
    pub uri: Option<Text<'a>>,
}

/// One changed field.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldChange<'a> {
    /// Field name: `status`, `totalPrice`, ...
    #[serde(borrow)]
    pub field: Text<'a>,
    /// Value before the change, as sent (`None` for `null` or absent).
    #[serde(borrow, default, rename = "oldValue")]
    pub old_value: Option<RawJson<'a>>,
    /// Value after the change, as sent (`None` for `null` or absent).
    #[serde(borrow, default, rename = "newValue")]
    pub new_value: Option<RawJson<'a>>,
}

impl<'a> FieldChange<'a> {
    /// The old value when it is a string.
    pub fn old_str(&self) -> Option<Cow<'a, str>> {
        self.old_value.and_then(|v| v.as_str())
    }

    /// The new value when it is a string.
    pub fn new_str(&self) -> Option<Cow<'a, str>> {
        self.new_value.and_then(|v| v.as_str())
    }
}

impl<'a> Change<'a> {
    /// The change of `field`, when it changed.
    pub fn field(&self, field: &str) -> Option<&FieldChange<'a>> {
        self.changeset.iter().find(|c| c.field == field)
    }

    /// True when this change is `action` (`updated`) of an entity of type
    /// `kind` (`job`), ignoring case.
    pub fn is(&self, kind: &str, action: &str) -> bool {
        self.entity.kind.eq_ignore_ascii_case(kind) && self.action.eq_ignore_ascii_case(action)
    }
}

impl<'a> Message<'a> {
    /// Reads a ServiceTrade body without checking the event's vendor.
    pub fn parse(body: &'a [u8]) -> Result<Self, PluginError> {
        VENDOR_INFO.parse(body)
    }

    /// The message timestamp as Unix seconds.
    pub fn timestamp_secs(&self) -> Option<i64> {
        self.timestamp.as_deref().and_then(|t| t.parse().ok())
    }

    /// The change `event` is about: the only one, or the one whose entity
    /// and action match the event's entity and kind (`<type>.<action>`; the
    /// host makes one event per change).
    pub fn change_for(&self, event: &Event) -> Result<&Change<'a>, PluginError> {
        if let [only] = &self.data[..] {
            return Ok(only);
        }
        let Some(entity) = event.entity() else {
            return Err(VENDOR_INFO.error(format!(
                "message has {} changes and event {} names no entity to pick one",
                self.data.len(),
                event.id()
            )));
        };
        let action = event.kind().split_once('.').map_or("", |(_, a)| a);
        let matches =
            |c: &&Change<'a>| slug_is(&c.entity.kind, &entity.kind) && c.entity.id == *entity.id;
        self.data
            .iter()
            .filter(matches)
            .find(|c| slug_is(&c.action, action))
            .or_else(|| self.data.iter().find(matches))
            .ok_or_else(|| {
                VENDOR_INFO.error(format!(
                    "message {} has no change of {} {}",
                    self.message_id, entity.kind, entity.id
                ))
            })
    }
}

/// True when `text` written as the host writes entity types and actions
/// (lower case, runs of other characters as one `_`) is `slug`.
fn slug_is(text: &str, slug: &str) -> bool {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_') == slug
}

#[cfg(test)]
mod tests {
    use crate::{EntityRef, Event, testing};

    /// The message of shared/vendors.md (message id filled in).
    const MESSAGE: &str = r#"{"messageId":"6f1d2c3b-1111-4222-8333-944455556666","timestamp":"1401833057","data":[{"action":"updated","timestamp":1401833052,"userId":1234,"entity":{"type":"appointment","id":34872,"uri":"https://api.servicetrade.com/api/appointment/34872"},"changeset":[{"field":"status","oldValue":"scheduled","newValue":"completed"}]}]}"#;
    /// plugins/servicetrade-job-status/samples/batch-mixed.json
    const BATCH: &str =
        include_str!("../../../plugins/servicetrade-job-status/samples/batch-mixed.json");

    fn event(kind: &str, body: &str) -> Event<'static> {
        testing::event_from("servicetrade", kind, body.trim())
    }

    fn about(event: Event<'static>, kind: &str, id: &str) -> Event<'static> {
        event.with_entity(Some(EntityRef {
            kind: kind.into(),
            id: id.into(),
            url: None,
        }))
    }

    #[test]
    fn a_message_lists_each_changed_entity_with_its_changeset() {
        let event = event("appointment.updated", MESSAGE);
        let message = event.servicetrade().unwrap();
        assert_eq!(message.message_id, "6f1d2c3b-1111-4222-8333-944455556666");
        assert_eq!(message.timestamp_secs(), Some(1401833057));
        let change = message.change_for(&event).unwrap();
        assert!(change.is("appointment", "updated"));
        assert_eq!(change.timestamp, Some(1401833052));
        assert_eq!(change.user_id, Some(1234));
        assert_eq!(change.entity.id.as_i64(), Some(34872));
        assert_eq!(
            change.entity.uri.as_deref(),
            Some("https://api.servicetrade.com/api/appointment/34872")
        );
        let status = change.field("status").unwrap();
        assert_eq!(status.old_str().as_deref(), Some("scheduled"));
        assert_eq!(status.new_str().as_deref(), Some("completed"));
        assert!(change.field("total").is_none());
    }

    #[test]
    fn in_a_batch_each_event_finds_its_own_change() {
        let job = about(event("job.updated", BATCH), "job", "88124");
        let message = job.servicetrade().unwrap();
        assert_eq!(message.data.len(), 3);
        let change = message.change_for(&job).unwrap();
        assert_eq!(change.entity.kind, "job");
        let total = change.field("totalPrice").unwrap();
        assert_eq!(total.new_value.and_then(|v| v.as_i64()), Some(200));
        assert_eq!(total.new_str(), None, "a number is not a string");

        let item = about(event("jobitem.updated", BATCH), "jobitem", "5521");
        assert_eq!(message.change_for(&item).unwrap().entity.id, "5521");

        let err = message
            .change_for(&event("job.updated", BATCH))
            .unwrap_err();
        assert!(err.message.contains("names no entity"), "{}", err.message);
        let err = message
            .change_for(&about(event("job.updated", BATCH), "job", "1"))
            .unwrap_err();
        assert_eq!(
            err.message,
            "ServiceTrade message 6c1c1a7e-8f1e-4a57-9d7e-3b0a6f1f0002 has no change of job 1"
        );
    }

    #[test]
    fn a_malformed_message_says_what_is_missing() {
        for (body, says) in [
            (
                r#"{"timestamp":"1","data":[]}"#,
                "missing field `messageId`",
            ),
            (r#"{"messageId":"m"}"#, "missing field `data`"),
            (
                r#"{"messageId":"m","data":[{"action":"updated"}]}"#,
                "missing field `entity`",
            ),
            (
                r#"{"messageId":"m","data":[{"action":"updated","entity":{"type":"job","id":1.5}}]}"#,
                "expected an id",
            ),
            ("", "ServiceTrade body is not JSON"),
        ] {
            let err = event("job.updated", body).servicetrade().unwrap_err();
            assert!(!err.retryable);
            assert!(
                err.message.starts_with("event evt_test: ServiceTrade "),
                "{}",
                err.message
            );
            assert!(err.message.contains(says), "{body}: {}", err.message);
        }
    }
}
