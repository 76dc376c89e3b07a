//! ServiceM8 (`vendor = "servicem8"`): thin notices that say what changed,
//! not the values.
//!
//! An **object webhook** names an object type and one entry per changed
//! record; fetch the record from [`Notice::resource_url_for`] through the
//! host's outbound HTTP:
//!
//! ```json
//! {"object":"job","entry":[{"changed_fields":["status"],"time":"2015-01-01 00:00:00","uuid":"..."}],
//!  "resource_url":"https://api.servicem8.com/api_1.0/job/<uuid>.json"}
//! ```
//!
//! The host stores one event per entry, each with the whole body:
//! [`Notice::entry_for`] finds the entry of the event at hand. An **event
//! webhook** (`job.completed`, ...) names its event in `event` or `eventName`
//! ([`Notice::event_name`]) and may carry `data`.
//!
//! Form-encoded bodies and add-on callbacks (a JWT as the whole body) are
//! not read by this view: use [`Event::body`] for those.
//!
//! ```
//! use fieldhook_guest::testing;
//!
//! let event = testing::event_from("servicem8", "job.updated", r#"{"object":"job","entry":[{"changed_fields":["status"],"time":"2015-01-01 00:00:00","uuid":"a1b2"}],"resource_url":"https://api.servicem8.com/api_1.0/job/a1b2.json"}"#);
//! let notice = event.servicem8()?;
//! let entry = notice.entry_for(&event)?;
//! assert_eq!(notice.object.as_deref(), Some("job"));
//! assert_eq!(entry.uuid, "a1b2");
//! assert!(entry.changed("status"));
//! assert_eq!(notice.resource_url_for(entry).as_deref(), Some("https://api.servicem8.com/api_1.0/job/a1b2.json"));
//! # Ok::<(), fieldhook_guest::PluginError>(())
//! ```

use std::borrow::Cow;

use serde::Deserialize;

use super::Vendor;
use crate::json::{RawJson, Text};
use crate::{Event, PluginError};

/// `event.vendor()` of ServiceM8 sources.
pub const VENDOR: &str = "servicem8";

/// Where ServiceM8 serves records: `<API>/<object>/<uuid>.json`.
pub const API_BASE: &str = "https://api.servicem8.com/api_1.0/";

pub(crate) const VENDOR_INFO: Vendor = Vendor {
    id: VENDOR,
    name: "ServiceM8",
    shape: r#"{"object":"job","entry":[{"changed_fields":["status"],"time":"2015-01-01 00:00:00","uuid":"..."}],"resource_url":"https://api.servicem8.com/api_1.0/job/<uuid>.json"} (object webhook) or {"event":"job.completed",...} (event webhook)"#,
};

/// A ServiceM8 webhook body: an object webhook (`object`, `entry`,
/// `resource_url`) or an event webhook (`event`/`eventName`, `data`).
#[derive(Debug, Clone, Deserialize)]
pub struct Notice<'a> {
    /// Object type of an object webhook: `job`, `JobActivity`, `company`, ...
    #[serde(borrow, default)]
    pub object: Option<Text<'a>>,
    /// One entry per changed record (object webhooks).
    #[serde(borrow, default)]
    pub entry: Vec<Entry<'a>>,
    /// Where the changed record can be fetched (object webhooks). With
    /// several entries it names only one: see [`Notice::resource_url_for`].
    #[serde(borrow, default)]
    pub resource_url: Option<Text<'a>>,
    /// Event name of an event webhook, when sent as `event`.
    #[serde(borrow, default)]
    pub event: Option<Text<'a>>,
    /// Event name of an event webhook, when sent as `eventName`.
    #[serde(borrow, default, rename = "eventName")]
    pub event_name_field: Option<Text<'a>>,
    /// Payload of an event webhook, as sent.
    #[serde(borrow, default)]
    pub data: Option<RawJson<'a>>,
}

/// One changed record of an object webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry<'a> {
    /// The record's uuid.
    #[serde(borrow)]
    pub uuid: Text<'a>,
    /// When it changed, UTC `YYYY-MM-DD HH:MM:SS` (other ServiceM8 times are
    /// account-local).
    #[serde(borrow, default)]
    pub time: Option<Text<'a>>,
    /// Names of the fields that changed.
    #[serde(borrow, default)]
    pub changed_fields: Vec<Text<'a>>,
}

impl Entry<'_> {
    /// True when `field` is among the changed fields.
    pub fn changed(&self, field: &str) -> bool {
        self.changed_fields.iter().any(|f| *f == field)
    }
}

impl<'a> Notice<'a> {
    /// Reads a ServiceM8 body without checking the event's vendor. Fails
    /// unless it is an object webhook (`object` and at least one `entry`) or
    /// an event webhook (`event` or `eventName`).
    pub fn parse(body: &'a [u8]) -> Result<Self, PluginError> {
        let notice: Notice<'a> = VENDOR_INFO.parse(body)?;
        if notice.is_object_webhook() || notice.event_name().is_some() {
            return Ok(notice);
        }
        Err(VENDOR_INFO.error(match (&notice.object, notice.entry.is_empty()) {
            (Some(_), true) => "object webhook has no `entry`: nothing says which record changed",
            (None, false) => "object webhook has no `object`: the entries' type is unknown",
            _ => "body is neither an object webhook (`object` and `entry`) nor an event webhook (`event`)",
        }))
    }

    /// True for an object webhook: `object` and at least one entry.
    pub fn is_object_webhook(&self) -> bool {
        self.object.is_some() && !self.entry.is_empty()
    }

    /// The event webhook's name (`job.completed`), from `event` or
    /// `eventName`; `None` for object webhooks.
    pub fn event_name(&self) -> Option<&str> {
        self.event.as_deref().or(self.event_name_field.as_deref())
    }

    /// The entry `event` is about: the only one, or the one whose uuid is
    /// the event's entity id (the host makes one event per entry).
    pub fn entry_for(&self, event: &Event) -> Result<&Entry<'a>, PluginError> {
        if let [only] = &self.entry[..] {
            return Ok(only);
        }
        let Some(entity) = event.entity() else {
            return Err(VENDOR_INFO.error(format!(
                "notice has {} entries and event {} names no entity to pick one",
                self.entry.len(),
                event.id()
            )));
        };
        self.entry
            .iter()
            .find(|e| e.uuid == *entity.id)
            .ok_or_else(|| {
                VENDOR_INFO.error(format!("notice has no entry with uuid `{}`", entity.id))
            })
    }

    /// Where `entry`'s record can be fetched: `resource_url` when it is the
    /// only entry or the URL names its uuid, else
    /// `https://api.servicem8.com/api_1.0/<object>/<uuid>.json`. `None` for
    /// an event webhook without `object`.
    pub fn resource_url_for(&self, entry: &Entry<'_>) -> Option<Cow<'_, str>> {
        if let Some(url) = &self.resource_url
            && (self.entry.len() == 1 || url.contains(&*entry.uuid))
        {
            return Some(Cow::Borrowed(url));
        }
        let object = self.object.as_deref()?.to_ascii_lowercase();
        Some(Cow::Owned(format!(
            "{API_BASE}{object}/{}.json",
            entry.uuid
        )))
    }
}

#[cfg(test)]
mod tests {
    use crate::{EntityRef, testing};

    /// The object webhook of shared/vendors.md.
    const OBJECT_WEBHOOK: &str = r#"{"object":"job","entry":[{"changed_fields":["status"],"time":"2015-01-01 00:00:00","uuid":"e3b0c442-98fc-4c14-9afb-f4c8996fb924"}],"resource_url":"https://api.servicem8.com/api_1.0/job/e3b0c442-98fc-4c14-9afb-f4c8996fb924.json"}"#;
    const TWO_ENTRIES: &str = r#"{"object":"JobActivity","entry":[{"changed_fields":["start_date"],"time":"2024-01-01 00:00:00","uuid":"u1"},{"changed_fields":[],"time":"2024-01-01 00:00:01","uuid":"u2"}],"resource_url":"https://api.servicem8.com/api_1.0/jobactivity/u2.json"}"#;

    fn event(body: &str) -> crate::Event<'static> {
        testing::event_from("servicem8", "job.updated", body)
    }

    fn about(event: crate::Event<'static>, uuid: &str) -> crate::Event<'static> {
        event.with_entity(Some(EntityRef {
            kind: "jobactivity".into(),
            id: uuid.into(),
            url: None,
        }))
    }

    #[test]
    fn an_object_webhook_names_the_object_the_entry_and_where_to_fetch_it() {
        let event = event(OBJECT_WEBHOOK);
        let notice = event.servicem8().unwrap();
        assert!(notice.is_object_webhook());
        assert_eq!(notice.event_name(), None);
        assert_eq!(notice.object.as_deref(), Some("job"));
        let entry = notice.entry_for(&event).unwrap();
        assert_eq!(entry.uuid, "e3b0c442-98fc-4c14-9afb-f4c8996fb924");
        assert_eq!(entry.time.as_deref(), Some("2015-01-01 00:00:00"));
        assert!(entry.changed("status"));
        assert!(!entry.changed("total"));
        assert_eq!(
            notice.resource_url_for(entry).as_deref(),
            Some("https://api.servicem8.com/api_1.0/job/e3b0c442-98fc-4c14-9afb-f4c8996fb924.json")
        );
    }

    #[test]
    fn with_several_entries_each_event_gets_its_own_entry_and_url() {
        let first = about(event(TWO_ENTRIES), "u1");
        let notice = first.servicem8().unwrap();
        let entry = notice.entry_for(&first).unwrap();
        assert_eq!(entry.uuid, "u1");
        assert_eq!(
            notice.resource_url_for(entry).as_deref(),
            Some("https://api.servicem8.com/api_1.0/jobactivity/u1.json"),
            "resource_url names u2; u1's URL is built from object and uuid"
        );
        let second = about(event(TWO_ENTRIES), "u2");
        let entry = notice.entry_for(&second).unwrap();
        assert_eq!(entry.uuid, "u2");
        assert!(entry.changed_fields.is_empty());

        let err = notice.entry_for(&event(TWO_ENTRIES)).unwrap_err();
        assert!(err.message.contains("names no entity"), "{}", err.message);
        let err = notice
            .entry_for(&about(event(TWO_ENTRIES), "u9"))
            .unwrap_err();
        assert_eq!(err.message, "ServiceM8 notice has no entry with uuid `u9`");
    }

    #[test]
    fn an_event_webhook_names_its_event() {
        let event = event(r#"{"eventName":"job.completed","data":{"uuid":"j-9"}}"#);
        let notice = event.servicem8().unwrap();
        assert!(!notice.is_object_webhook());
        assert_eq!(notice.event_name(), Some("job.completed"));
        assert_eq!(
            notice
                .data
                .and_then(|d| d.get("uuid"))
                .and_then(|u| u.as_str())
                .as_deref(),
            Some("j-9")
        );
    }

    #[test]
    fn a_malformed_notice_says_what_is_missing() {
        for (body, says) in [
            (
                r#"{"object":"job","resource_url":"x"}"#,
                "object webhook has no `entry`",
            ),
            (
                r#"{"entry":[{"uuid":"a"}]}"#,
                "object webhook has no `object`",
            ),
            (r#"{"foo":"bar"}"#, "neither an object webhook"),
            (
                r#"{"object":"job","entry":[{"time":"2015-01-01 00:00:00"}]}"#,
                "missing field `uuid`",
            ),
            ("mode=subscribe&challenge=x", "ServiceM8 body is not JSON"),
        ] {
            let err = event(body).servicem8().unwrap_err();
            assert!(!err.retryable, "{body}");
            assert!(
                err.message.starts_with("event evt_test: ServiceM8 "),
                "{}",
                err.message
            );
            assert!(err.message.contains(says), "{body}: {}", err.message);
        }
    }
}
