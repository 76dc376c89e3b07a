//! ServiceTitan (`vendor = "servicetitan"`), including Scheduling Pro.
//!
//! ServiceTitan does not publish its envelope; integrators read `eventId`,
//! `eventType`, `tenantId` and `data`:
//!
//! ```json
//! {"eventId":"8d9f3c7e-...","eventType":"job.completed","tenantId":123456789,"data":{"id":98765}}
//! ```
//!
//! Scheduling Pro sends two events, **Session Completed** (a booking created
//! a job) and **Qualified Abandoned Session** (contact details given, booking
//! abandoned): [`Envelope::scheduling_pro`] names them and
//! [`Envelope::session`] reads the session in `data`.
//!
//! ```
//! use fieldhook_guest::testing;
//! use fieldhook_guest::vendors::servicetitan::SchedulingProEvent;
//!
//! let event = testing::event_from("servicetitan", "scheduling.session_abandoned", r#"{"eventId":"b7e1","eventType":"Qualified Abandoned Session","tenantId":42,"occurredAt":"2026-11-21T18:02:11Z","data":{"id":"sess_78","customer":{"firstName":"Sam","lastName":"Ortiz","email":"sam@example.com"}}}"#);
//! let envelope = event.servicetitan()?;
//! assert_eq!(envelope.scheduling_pro(), Some(SchedulingProEvent::QualifiedAbandonedSession));
//! assert_eq!(envelope.tenant_id.as_ref().and_then(|t| t.as_i64()), Some(42));
//! let session = envelope.session()?;
//! assert_eq!(session.id()?, "sess_78");
//! let contact = session.contact().expect("contact details");
//! assert_eq!(contact.display_name().as_deref(), Some("Sam Ortiz"));
//! # Ok::<(), fieldhook_guest::PluginError>(())
//! ```

use std::borrow::Cow;

use serde::Deserialize;

use super::Vendor;
use crate::PluginError;
use crate::json::{Id, RawJson, Text};

/// `event.vendor()` of ServiceTitan sources.
pub const VENDOR: &str = "servicetitan";

pub(crate) const VENDOR_INFO: Vendor = Vendor {
    id: VENDOR,
    name: "ServiceTitan",
    shape: r#"{"eventId":"...","eventType":"job.completed","tenantId":123,"data":{"id":...}}"#,
};

/// A ServiceTitan webhook envelope.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// Event id (the dedupe key).
    pub event_id: Option<Id<'a>>,
    /// Event type as sent: `job.completed`, `Session Completed`, ... (read
    /// from `eventType`, else `eventName`, `event` or `type`).
    pub event_type: Text<'a>,
    /// The tenant (ServiceTitan account).
    pub tenant_id: Option<Id<'a>>,
    /// When it happened: the first of `occurredAt`, `occurredOn`,
    /// `createdOn`, `timestamp` that is a string.
    pub occurred_at: Option<Text<'a>>,
    /// The event's record, as sent.
    pub data: Option<RawJson<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(borrow, default)]
    event_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    event_type: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    event_name: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    event: Option<RawJson<'a>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    tenant_id: Option<Id<'a>>,
    #[serde(borrow, default)]
    occurred_at: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    occurred_on: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    created_on: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    data: Option<RawJson<'a>>,
}

/// The two Scheduling Pro events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulingProEvent {
    /// *Session Completed*: the booking created a job (host kind
    /// `scheduling.session_completed`).
    SessionCompleted,
    /// *Qualified Abandoned Session*: enough contact details to follow up,
    /// booking abandoned (host kind `scheduling.session_abandoned`).
    QualifiedAbandonedSession,
}

impl<'a> Envelope<'a> {
    /// Reads a ServiceTitan body without checking the event's vendor. Fails
    /// when no event type is given.
    pub fn parse(body: &'a [u8]) -> Result<Self, PluginError> {
        let wire: Wire<'a> = VENDOR_INFO.parse(body)?;
        let text = |v: Option<RawJson<'a>>| v.and_then(|v| v.as_str()).map(Text);
        let event_type = text(wire.event_type)
            .or_else(|| text(wire.event_name))
            .or_else(|| text(wire.event))
            .or_else(|| text(wire.kind))
            .ok_or_else(|| {
                VENDOR_INFO.error("body has no `eventType` (nor `eventName`, `event`, `type`)")
            })?;
        let occurred_at = text(wire.occurred_at)
            .or_else(|| text(wire.occurred_on))
            .or_else(|| text(wire.created_on))
            .or_else(|| text(wire.timestamp));
        Ok(Envelope {
            event_id: wire.event_id,
            event_type,
            tenant_id: wire.tenant_id,
            occurred_at,
            data: wire.data,
        })
    }

    /// Which Scheduling Pro event this is (case, spaces and punctuation
    /// ignored: `Session Completed`, `SessionCompleted`,
    /// `scheduling.session_completed`); `None` for other events.
    pub fn scheduling_pro(&self) -> Option<SchedulingProEvent> {
        let squashed: String = self
            .event_type
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match squashed.as_str() {
            "sessioncompleted" | "schedulingsessioncompleted" => {
                Some(SchedulingProEvent::SessionCompleted)
            }
            "qualifiedabandonedsession"
            | "schedulingqualifiedabandonedsession"
            | "sessionabandoned"
            | "schedulingsessionabandoned" => Some(SchedulingProEvent::QualifiedAbandonedSession),
            _ => None,
        }
    }

    /// `data.id`, when given.
    pub fn data_id(&self) -> Option<Id<'a>> {
        self.data
            .and_then(|d| d.get("id"))
            .and_then(|id| id.parse().ok())
    }

    /// `data` deserialized into `T` (a plugin's own struct, which may borrow
    /// from the body).
    pub fn data_as<T: Deserialize<'a>>(&self) -> Result<T, PluginError> {
        let data = self.data.filter(|d| !d.is_null()).ok_or_else(|| {
            VENDOR_INFO.error(format!("`{}` body has no `data`", self.event_type))
        })?;
        data.parse().map_err(|err| {
            VENDOR_INFO.error(format!(
                "`{}` data does not have the expected shape: {err}",
                self.event_type
            ))
        })
    }

    /// The Scheduling Pro session in `data`; an error for other events.
    pub fn session(&self) -> Result<Session<'a>, PluginError> {
        if self.scheduling_pro().is_none() {
            return Err(VENDOR_INFO.error(format!(
                "`{}` is not a Scheduling Pro event (Session Completed, Qualified Abandoned Session)",
                self.event_type
            )));
        }
        self.data_as()
    }
}

/// A Scheduling Pro session. ServiceTitan does not publish it: these are the
/// fields integrators have seen; read others with [`Envelope::data_as`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session<'a> {
    /// Session id, when sent as `id`.
    #[serde(borrow, default)]
    pub id: Option<Id<'a>>,
    /// Session id, when sent as `sessionId`.
    #[serde(borrow, default)]
    pub session_id: Option<Id<'a>>,
    /// The job the booking created (Session Completed).
    #[serde(borrow, default)]
    pub job_id: Option<Id<'a>>,
    /// Contact details, when sent as `customer`.
    #[serde(borrow, default)]
    pub customer: Option<Contact<'a>>,
    /// Contact details, when sent as `contact`.
    #[serde(borrow, default)]
    pub contact: Option<Contact<'a>>,
    /// The service asked for.
    #[serde(borrow, default)]
    pub service_name: Option<Text<'a>>,
    /// Marketing campaign.
    #[serde(borrow, default)]
    pub campaign: Option<Text<'a>>,
    /// Free-text notes.
    #[serde(borrow, default)]
    pub notes: Option<Text<'a>>,
}

impl<'a> Session<'a> {
    /// The session id: `sessionId`, else `id`; an error naming both when
    /// neither is given.
    pub fn id(&self) -> Result<&Id<'a>, PluginError> {
        self.session_id
            .as_ref()
            .or(self.id.as_ref())
            .ok_or_else(|| {
                VENDOR_INFO.error("Scheduling Pro session has no `data.sessionId` or `data.id`")
            })
    }

    /// The contact details: `customer`, else `contact`.
    pub fn contact(&self) -> Option<&Contact<'a>> {
        self.customer.as_ref().or(self.contact.as_ref())
    }
}

/// Contact details left in a session.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact<'a> {
    /// First name.
    #[serde(borrow, default)]
    pub first_name: Option<Text<'a>>,
    /// Last name.
    #[serde(borrow, default)]
    pub last_name: Option<Text<'a>>,
    /// Full name, when sent as one field.
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
    /// Email address.
    #[serde(borrow, default)]
    pub email: Option<Text<'a>>,
    /// Phone number.
    #[serde(borrow, default)]
    pub phone: Option<Text<'a>>,
    /// ZIP / postal code.
    #[serde(borrow, default)]
    pub zip: Option<Text<'a>>,
}

impl<'a> Contact<'a> {
    /// `name`, else `firstName lastName` (either may be missing); `None`
    /// when there is no name.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        let given = |t: &Option<Text<'a>>| {
            t.clone()
                .map(Text::into_cow)
                .filter(|t| !t.trim().is_empty())
        };
        if let Some(name) = given(&self.name) {
            return Some(name);
        }
        match (given(&self.first_name), given(&self.last_name)) {
            (Some(first), Some(last)) => {
                Some(Cow::Owned(format!("{} {}", first.trim(), last.trim())))
            }
            (one, other) => one.or(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Envelope, SchedulingProEvent};
    use crate::{Event, testing};

    /// The public test vector of shared/vendors.md.
    const JOB_COMPLETED: &str = r#"{"eventId":"8d9f3c7e-0000-4000-8000-000000000001","eventType":"job.completed","tenantId":123456789,"data":{"id":98765}}"#;
    const ABANDONED: &str = include_str!(
        "../../../plugins/schedulingpro-crm-lead/samples/qualified-abandoned-session.json"
    );
    const COMPLETED: &str =
        include_str!("../../../plugins/schedulingpro-crm-lead/samples/session-completed.json");

    fn event(kind: &str, body: &str) -> Event<'static> {
        testing::event_from("servicetitan", kind, body.trim())
    }

    #[test]
    fn the_public_vector_is_a_job_event_with_tenant_and_record_id() {
        let event = event("job.completed", JOB_COMPLETED);
        let envelope = event.servicetitan().unwrap();
        assert_eq!(envelope.event_type, "job.completed");
        assert_eq!(
            envelope.event_id.as_ref().unwrap(),
            "8d9f3c7e-0000-4000-8000-000000000001"
        );
        assert_eq!(envelope.tenant_id.as_ref().unwrap(), "123456789");
        assert_eq!(envelope.data_id().and_then(|id| id.as_i64()), Some(98765));
        assert_eq!(envelope.scheduling_pro(), None);
        let err = envelope.session().unwrap_err();
        assert!(
            err.message
                .contains("`job.completed` is not a Scheduling Pro event"),
            "{}",
            err.message
        );
    }

    #[test]
    fn an_abandoned_session_has_contact_details_to_follow_up() {
        let event = event("scheduling.session_abandoned", ABANDONED);
        let envelope = event.servicetitan().unwrap();
        assert_eq!(
            envelope.scheduling_pro(),
            Some(SchedulingProEvent::QualifiedAbandonedSession)
        );
        assert_eq!(
            envelope.occurred_at.as_deref(),
            Some("2026-11-21T18:02:11Z")
        );
        let session = envelope.session().unwrap();
        assert_eq!(session.id().unwrap(), "sess_78");
        assert_eq!(session.service_name.as_deref(), Some("Water heater repair"));
        assert_eq!(session.campaign.as_deref(), Some("fall-promo"));
        let contact = session.contact().unwrap();
        assert_eq!(contact.display_name().as_deref(), Some("Sam Ortiz"));
        assert_eq!(contact.email.as_deref(), Some("sam.ortiz@example.com"));
        assert_eq!(contact.phone.as_deref(), Some("+15125550142"));
        assert_eq!(contact.zip.as_deref(), Some("78701"));
    }

    #[test]
    fn a_completed_session_names_the_job_it_created() {
        let event = event("scheduling.session_completed", COMPLETED);
        let envelope = event.servicetitan().unwrap();
        assert_eq!(
            envelope.scheduling_pro(),
            Some(SchedulingProEvent::SessionCompleted)
        );
        let session = envelope.session().unwrap();
        assert_eq!(session.job_id.and_then(|j| j.as_i64()), Some(5512093));
    }

    #[test]
    fn scheduling_pro_names_are_matched_loosely() {
        for (name, expected) in [
            (
                "Session Completed",
                Some(SchedulingProEvent::SessionCompleted),
            ),
            (
                "SESSION_COMPLETED",
                Some(SchedulingProEvent::SessionCompleted),
            ),
            (
                "scheduling.session_abandoned",
                Some(SchedulingProEvent::QualifiedAbandonedSession),
            ),
            ("Job Booked", None),
        ] {
            let body = format!(r#"{{"eventType":"{name}"}}"#);
            assert_eq!(
                Envelope::parse(body.as_bytes()).unwrap().scheduling_pro(),
                expected,
                "{name}"
            );
        }
        let by_type = Envelope::parse(br#"{"type":"Session Completed","timestamp":"t"}"#).unwrap();
        assert_eq!(by_type.event_type, "Session Completed");
        assert_eq!(by_type.occurred_at.as_deref(), Some("t"));
    }

    #[test]
    fn a_malformed_envelope_says_what_is_missing() {
        for (body, says) in [
            (
                r#"{"eventId":"e","data":{"id":1}}"#,
                "ServiceTitan body has no `eventType`",
            ),
            (
                r#"{"eventType":"Session Completed","tenantId":42}"#,
                "`Session Completed` body has no `data`",
            ),
            (
                r#"{"eventType":"Session Completed","data":{"customer":{}}}"#,
                "no `data.sessionId` or `data.id`",
            ),
            (
                r#"{"eventType":"Session Completed","data":"sess_1"}"#,
                "data does not have the expected shape",
            ),
            (r#"{"eventType":"x","tenantId":[1]}"#, "expected an id"),
            ("<xml/>", "ServiceTitan body is not JSON"),
        ] {
            let err = event("unknown", body)
                .servicetitan()
                .and_then(|e| e.session().and_then(|s| s.id().map(|_| ())))
                .unwrap_err();
            assert!(!err.retryable);
            assert!(err.message.contains(says), "{body}: {}", err.message);
        }
    }
}
