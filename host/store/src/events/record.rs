//! The stored form of an event: a format byte, then the record in postcard.

use fieldhook_core::event::{EntityRecord, EventRecord, NewEvent, event_id};
use serde::{Deserialize, Serialize};

/// Version byte in front of every encoded record, so the format can evolve.
const FORMAT_V1: u8 = 1;

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
    // Encoded as `EventRecord`'s are.
    #[serde(with = "fieldhook_core::bytes::pairs")]
    headers: &'a [(String, Vec<u8>)],
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

/// Where the id sits in an encoded record: after the format byte and
/// postcard's one-byte length (ids are always [`ID_LEN`] bytes).
const ID_AT: std::ops::Range<usize> = 2..2 + ID_LEN;
const ID_LEN: usize = 4 + 26;

/// An encoded record still waiting for its id. Encoding is done by the
/// request; the id is filled in by the store's committer, the one place
/// that knows the order events are stored in.
pub(crate) struct Unnumbered(Vec<u8>);

impl Unnumbered {
    /// The record, stored as event `ulid`.
    pub(crate) fn number(mut self, ulid: ulid::Ulid) -> Vec<u8> {
        self.0[ID_AT].copy_from_slice(event_id(ulid).as_bytes());
        self.0
    }
}

/// Encoding a new event into its stored form.
pub(crate) trait Encode {
    /// Encodes the event with a placeholder id, to be numbered later.
    fn encode_unnumbered(&self) -> Unnumbered;
    /// Encodes the event as it will be stored under `id`.
    fn encode(&self, id: &str) -> Vec<u8>;
}

impl Encode for NewEvent {
    fn encode_unnumbered(&self) -> Unnumbered {
        Unnumbered(self.encode(&event_id(ulid::Ulid::nil())))
    }

    fn encode(&self, id: &str) -> Vec<u8> {
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

/// What the dedupe index needs of a stored record, borrowed from its
/// bytes: decoding stops before headers and body.
#[derive(Deserialize)]
pub(crate) struct DedupeFields<'a> {
    pub(crate) id: &'a str,
    pub(crate) source: &'a str,
    _vendor: &'a str,
    _kind: &'a str,
    _entity: Option<EntityRef<'a>>,
    _occurred_at: Option<&'a str>,
    pub(crate) dedupe_key: Option<&'a str>,
}

/// What fan-out needs of a stored record: decoding stops before the
/// occurred-at text, headers and body.
#[derive(Deserialize)]
pub(crate) struct HeadFields<'a> {
    pub(crate) id: &'a str,
    pub(crate) source: &'a str,
    _vendor: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) entity: Option<EntityRecord>,
}

impl<'a> HeadFields<'a> {
    /// Decodes the leading fields of a stored record.
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&FORMAT_V1, rest)) => postcard::take_from_bytes(rest)
                .map(|(fields, _rest)| fields)
                .map_err(|e| e.to_string()),
            Some((v, _)) => Err(format!("unknown record format version {v}")),
            None => Err("empty record".into()),
        }
    }
}

/// [`EntityRecord`], borrowed.
#[derive(Deserialize)]
struct EntityRef<'a> {
    _kind: &'a str,
    _id: &'a str,
    _url: Option<&'a str>,
}

impl<'a> DedupeFields<'a> {
    /// Decodes the leading fields of a stored record.
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&FORMAT_V1, rest)) => postcard::take_from_bytes(rest)
                .map(|(fields, _headers_and_body)| fields)
                .map_err(|e| e.to_string()),
            Some((v, _)) => Err(format!("unknown record format version {v}")),
            None => Err("empty record".into()),
        }
    }
}

/// Decodes a stored record.
pub(crate) fn decode(bytes: &[u8]) -> Result<EventRecord, String> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unknown record format version {v}")),
        None => Err("empty record".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbered_record_decodes_with_its_id_and_everything_else_intact() {
        let event = NewEvent {
            source: "hcp".into(),
            vendor: "housecall-pro".into(),
            kind: "job.completed".into(),
            entity: None,
            occurred_at: None,
            dedupe_key: Some("k".into()),
            parsed: true,
            received_at_ms: 7,
            headers: vec![("x".into(), b"y".to_vec())],
            body: b"{}".to_vec(),
        };
        let ulid = ulid::Ulid::new();
        let record = decode(&event.encode_unnumbered().number(ulid)).unwrap();
        assert_eq!(record.id, event_id(ulid));
        assert_eq!(
            event.encode(&record.id),
            event.encode_unnumbered().number(ulid)
        );
        assert_eq!(record.body, b"{}");
    }

    #[test]
    fn the_dedupe_fields_read_the_same_as_the_whole_record() {
        let event = NewEvent {
            source: "hcp".into(),
            vendor: "housecall-pro".into(),
            kind: "job.completed".into(),
            entity: Some(EntityRecord {
                kind: "job".into(),
                id: "j1".into(),
                url: Some("https://x".into()),
            }),
            occurred_at: Some("2026-01-01T00:00:00Z".into()),
            dedupe_key: Some("k".into()),
            parsed: true,
            received_at_ms: 1_234,
            headers: vec![("x".into(), b"y".to_vec())],
            body: b"{}".to_vec(),
        };
        let bytes = event.encode("evt_1");
        let head = DedupeFields::decode(&bytes).unwrap();
        assert_eq!(
            (head.id, head.source, head.dedupe_key),
            ("evt_1", "hcp", Some("k"))
        );
    }
}
