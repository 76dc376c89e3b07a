//! Jobber (`vendor = "jobber"`): thin notices naming a topic and an item.
//!
//! ```json
//! {"data":{"webHookEvent":{"topic":"JOB_UPDATE","appId":"...","accountId":"...","itemId":"...","occurredAt":"..."}}}
//! ```
//!
//! Fetch the item over Jobber's GraphQL API through the host's outbound
//! HTTP (the host holds the OAuth credentials); `itemId` is a GraphQL id.
//!
//! ```
//! use fieldhook_guest::testing;
//!
//! let event = testing::event_from("jobber", "client.created", r#"{"data":{"webHookEvent":{"topic":"CLIENT_CREATE","appId":"3ef2","accountId":"MQ==","itemId":"MQ==","occurredAt":"2021-08-12T16:31:36-06:00"}}}"#);
//! let notice = event.jobber()?;
//! assert_eq!(notice.entity_type(), "client");
//! assert_eq!(notice.action(), "CREATE");
//! assert_eq!(notice.item_id, "MQ==");
//! # Ok::<(), fieldhook_guest::PluginError>(())
//! ```

use serde::Deserialize;

use super::Vendor;
use crate::PluginError;
use crate::json::Text;

/// `event.vendor()` of Jobber sources.
pub const VENDOR: &str = "jobber";

pub(crate) const VENDOR_INFO: Vendor = Vendor {
    id: VENDOR,
    name: "Jobber",
    shape: r#"{"data":{"webHookEvent":{"topic":"JOB_UPDATE","appId":"...","accountId":"...","itemId":"...","occurredAt":"..."}}}"#,
};

/// A Jobber webhook: the `data.webHookEvent` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice<'a> {
    /// `JOB_UPDATE`, `CLIENT_CREATE`, `VISIT_COMPLETE`, `APP_DISCONNECT`, ...
    #[serde(borrow)]
    pub topic: Text<'a>,
    /// The Jobber app the webhook belongs to.
    #[serde(borrow, default)]
    pub app_id: Option<Text<'a>>,
    /// The Jobber account (a GraphQL id).
    #[serde(borrow, default)]
    pub account_id: Option<Text<'a>>,
    /// The item the topic is about (a GraphQL id).
    #[serde(borrow)]
    pub item_id: Text<'a>,
    /// When it happened (ISO 8601 with offset).
    #[serde(borrow, default)]
    pub occurred_at: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, rename = "webHookEvent")]
    web_hook_event: Notice<'a>,
}

impl<'a> Notice<'a> {
    /// Reads a Jobber body without checking the event's vendor.
    pub fn parse(body: &'a [u8]) -> Result<Self, PluginError> {
        VENDOR_INFO
            .parse::<Wire<'a>>(body)
            .map(|w| w.data.web_hook_event)
    }

    /// The entity the topic is about, lower case: `job` for `JOB_UPDATE`,
    /// `payment_record` for `PAYMENT_RECORD_CREATE` (as the host's kind).
    pub fn entity_type(&self) -> String {
        match self.topic.rsplit_once('_') {
            Some((entity, _)) if !entity.is_empty() => entity.to_ascii_lowercase(),
            _ => self.topic.to_ascii_lowercase(),
        }
    }

    /// What happened, as in the topic: `UPDATE` for `JOB_UPDATE`.
    pub fn action(&self) -> &str {
        self.topic
            .rsplit_once('_')
            .map_or(&self.topic, |(_, verb)| verb)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing;

    /// The public test vector of shared/vendors.md.
    const CLIENT_CREATE: &str = r#"{"data":{"webHookEvent":{"topic":"CLIENT_CREATE","appId":"3ef22a50-072d-430c-a78f-b7646657560b","accountId":"MQ==","itemId":"MQ==","occurredAt":"2021-08-12T16:31:36-06:00"}}}"#;

    #[test]
    fn the_public_vector_names_topic_account_and_item() {
        let event = testing::event_from("jobber", "client.created", CLIENT_CREATE);
        let notice = event.jobber().unwrap();
        assert_eq!(notice.topic, "CLIENT_CREATE");
        assert_eq!(notice.entity_type(), "client");
        assert_eq!(notice.action(), "CREATE");
        assert_eq!(
            notice.app_id.as_deref(),
            Some("3ef22a50-072d-430c-a78f-b7646657560b")
        );
        assert_eq!(notice.account_id.as_deref(), Some("MQ=="));
        assert_eq!(notice.item_id, "MQ==");
        assert_eq!(
            notice.occurred_at.as_deref(),
            Some("2021-08-12T16:31:36-06:00")
        );
    }

    #[test]
    fn multi_word_entities_keep_their_underscores() {
        let body = r#"{"data":{"webHookEvent":{"topic":"PAYMENT_RECORD_CREATE","itemId":"Z2lk"}}}"#;
        let notice = super::Notice::parse(body.as_bytes()).unwrap();
        assert_eq!(notice.entity_type(), "payment_record");
        assert_eq!(notice.action(), "CREATE");
        assert_eq!(notice.account_id, None);
    }

    #[test]
    fn a_malformed_notice_says_what_is_missing() {
        for (body, says) in [
            (r#"{"data":{}}"#, "missing field `webHookEvent`"),
            (
                r#"{"webHookEvent":{"topic":"JOB_UPDATE"}}"#,
                "missing field `data`",
            ),
            (
                r#"{"data":{"webHookEvent":{"topic":"JOB_UPDATE"}}}"#,
                "missing field `itemId`",
            ),
            ("", "Jobber body is not JSON"),
        ] {
            let err = testing::event_from("jobber", "job.updated", body)
                .jobber()
                .unwrap_err();
            assert!(!err.retryable);
            assert!(
                err.message.starts_with("event evt_test: Jobber body"),
                "{}",
                err.message
            );
            assert!(err.message.contains(says), "{body}: {}", err.message);
        }
    }
}
