//! Events: what a webhook becomes once verified, and its id.
//!
//! An event id is `evt_` and a ULID: ids sort by the order the store
//! assigned them in, which is receive order, and carry their receive time.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The record an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRecord {
    /// Vendor entity type (`job`).
    pub kind: String,
    /// Vendor id.
    pub id: String,
    /// Where to fetch it, when given.
    pub url: Option<String>,
}

/// What one webhook request carried: its headers and body, as received.
///
/// A vendor may split one message into several events (ServiceTrade sends
/// one per changed entity); those events hold the same `Arc<Message>`, and
/// the store keeps the message once for all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Headers as received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Raw body.
    pub body: Vec<u8>,
}

/// An event about to be stored (no id yet).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Source name.
    pub source: String,
    /// Vendor name.
    pub vendor: String,
    /// Normalized kind.
    pub kind: String,
    /// Entity, when known.
    pub entity: Option<EntityRecord>,
    /// Vendor's occurred-at text.
    pub occurred_at: Option<String>,
    /// Dedupe key, when the vendor gives or implies one.
    pub dedupe_key: Option<String>,
    /// False when the body was not the JSON the vendor documents.
    pub parsed: bool,
    /// Receive time, Unix ms.
    pub received_at_ms: u64,
    /// The message the event arrived in. Consecutive events offered to the
    /// store together that hold the same `Arc` are stored with one copy of
    /// it.
    pub message: Arc<Message>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Host-assigned id (`evt_` + ULID, sortable by receive time).
    pub id: String,
    /// Source name.
    pub source: String,
    /// Vendor name.
    pub vendor: String,
    /// Normalized kind.
    pub kind: String,
    /// Entity, when known.
    pub entity: Option<EntityRecord>,
    /// Vendor's occurred-at text.
    pub occurred_at: Option<String>,
    /// Dedupe key.
    pub dedupe_key: Option<String>,
    /// False when the body was not the JSON the vendor documents.
    pub parsed: bool,
    /// Receive time, Unix ms.
    pub received_at_ms: u64,
    /// Headers as received.
    #[serde(with = "crate::bytes::pairs")]
    pub headers: Vec<(String, Vec<u8>)>,
    /// Raw body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// The id of the event stored as `ulid`: `evt_` and the ULID, so ids sort by
/// the order they were assigned in.
pub fn event_id(ulid: ulid::Ulid) -> String {
    format!("evt_{ulid}")
}

/// The receive time encoded in an `evt_` + ULID id.
pub fn event_time_ms(event_id: &str) -> Option<u64> {
    let ulid = event_id.strip_prefix("evt_")?.get(..26)?;
    ulid::Ulid::from_string(ulid).ok().map(|u| u.timestamp_ms())
}

/// The smallest event id at or after `ms` (ids sort by receive time).
pub fn event_id_at(ms: u64) -> String {
    event_id(ulid::Ulid::from_parts(ms, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_carry_their_receive_time() {
        let id = event_id_at(1_700_000_000_123);
        assert_eq!(event_time_ms(&id), Some(1_700_000_000_123));
        assert!(event_id_at(1) < event_id_at(2));
        assert_eq!(event_time_ms("job_1"), None);
    }
}
