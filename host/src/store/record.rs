//! The stored form of an event.

use serde::{Deserialize, Serialize};

/// Version byte in front of every encoded record, so the format can evolve.
const FORMAT_V1: u8 = 1;

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
    /// Headers as received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Raw body.
    pub body: Vec<u8>,
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
    pub headers: Vec<(String, Vec<u8>)>,
    /// Raw body.
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct EncodeRef<'a> {
    id: &'a str,
    source: &'a str,
    vendor: &'a str,
    kind: &'a str,
    entity: &'a Option<EntityRecord>,
    occurred_at: &'a Option<String>,
    dedupe_key: &'a Option<String>,
    parsed: bool,
    received_at_ms: u64,
    headers: &'a [(String, Vec<u8>)],
    body: &'a [u8],
}

impl NewEvent {
    /// Encodes the event as it will be stored under `id`.
    pub(crate) fn encode(&self, id: &str) -> Vec<u8> {
        let r = EncodeRef {
            id,
            source: &self.source,
            vendor: &self.vendor,
            kind: &self.kind,
            entity: &self.entity,
            occurred_at: &self.occurred_at,
            dedupe_key: &self.dedupe_key,
            parsed: self.parsed,
            received_at_ms: self.received_at_ms,
            headers: &self.headers,
            body: &self.body,
        };
        let mut out = vec![FORMAT_V1];
        // Serialising plain owned data into a Vec cannot fail.
        out.extend(postcard::to_stdvec(&r).unwrap_or_default());
        out
    }
}

impl EventRecord {
    /// Decodes a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&FORMAT_V1, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
            Some((v, _)) => Err(format!("unknown record format version {v}")),
            None => Err("empty record".into()),
        }
    }
}
