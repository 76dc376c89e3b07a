//! The stored form of an event: a format byte, then the record in postcard.
//!
//! Two formats, told apart by that byte:
//! - [`WHOLE`] (1): the record holds the message's headers and body. Every
//!   event stored before shared messages existed is in this format, and an
//!   event that is alone in its message still is.
//! - [`SHARING`] (2): the event's own fields, then the [`Span`] of events
//!   split from the same message. The message (headers and body) is stored
//!   once, under the span's first event id ([`encode_message`]).
//!
//! Both formats begin with the same fields in the same order, so the
//! partial decoders ([`DedupeFields`], [`HeadFields`]) read either.

use fieldhook_core::event::{EntityRecord, EventRecord, Message, NewEvent, event_id};
use serde::{Deserialize, Serialize};

/// Format byte of a record that holds its headers and body.
const WHOLE: u8 = 1;
/// Format byte of a record whose headers and body are in a shared message.
const SHARING: u8 = 2;
/// Format byte of a shared message record.
const MESSAGE_V1: u8 = 1;

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

/// A [`SHARING`] record as written: the same leading fields as a whole
/// record, then the span instead of headers and body.
#[derive(Serialize)]
struct SharingRef<'a> {
    id: &'a str,
    source: &'a str,
    vendor: &'a str,
    kind: &'a str,
    entity: &'a Option<EntityRecord>,
    occurred_at: &'a Option<String>,
    dedupe_key: &'a Option<String>,
    parsed: bool,
    received_at_ms: u64,
    first: &'a str,
    last: &'a str,
}

/// A [`SHARING`] record as read.
#[derive(Deserialize)]
struct SharingRecord {
    id: String,
    source: String,
    vendor: String,
    kind: String,
    entity: Option<EntityRecord>,
    occurred_at: Option<String>,
    dedupe_key: Option<String>,
    parsed: bool,
    received_at_ms: u64,
    first: String,
    last: String,
}

/// The span of a [`SHARING`] record, borrowed: decoding skips the fields
/// before it without copying them.
#[derive(Deserialize)]
struct SpanFields<'a> {
    _id: &'a str,
    _source: &'a str,
    _vendor: &'a str,
    _kind: &'a str,
    _entity: Option<EntityRef<'a>>,
    _occurred_at: Option<&'a str>,
    _dedupe_key: Option<&'a str>,
    _parsed: bool,
    _received_at_ms: u64,
    first: &'a str,
    last: &'a str,
}

/// A message record as written and read.
#[derive(Serialize)]
struct MessageRef<'a> {
    #[serde(with = "fieldhook_core::bytes::pairs")]
    headers: &'a [(String, Vec<u8>)],
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

#[derive(Deserialize)]
struct MessageRecord {
    #[serde(with = "fieldhook_core::bytes::pairs")]
    headers: Vec<(String, Vec<u8>)>,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

/// Where the id sits in an encoded record: after the format byte and
/// postcard's one-byte length (ids are always [`ID_LEN`] bytes).
const ID_AT: std::ops::Range<usize> = 2..2 + ID_LEN;
const ID_LEN: usize = 4 + 26;
/// A [`SHARING`] record ends with the span: two ids, each after its
/// one-byte length.
const SPAN_LEN: usize = 2 * (1 + ID_LEN);

/// The events split from one message, by id: the first (under whose id the
/// message is stored) and the last. Ids are assigned in order under one
/// lock, so every event that shares the message lies between the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) first: String,
    pub(crate) last: String,
}

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

/// An encoded [`SHARING`] record still waiting for its id and its span,
/// known once the store has numbered every event of its message.
pub(crate) struct UnnumberedSharing(Vec<u8>);

impl UnnumberedSharing {
    /// The record, stored as event `ulid` of the message whose events run
    /// from `first` to `last`.
    pub(crate) fn number(
        mut self,
        ulid: ulid::Ulid,
        first: ulid::Ulid,
        last: ulid::Ulid,
    ) -> Vec<u8> {
        self.0[ID_AT].copy_from_slice(event_id(ulid).as_bytes());
        let span = self.0.len().saturating_sub(SPAN_LEN);
        let first_at = span + 1..span + 1 + ID_LEN;
        let last_at = span + 2 + ID_LEN..span + SPAN_LEN;
        self.0[first_at].copy_from_slice(event_id(first).as_bytes());
        self.0[last_at].copy_from_slice(event_id(last).as_bytes());
        self.0
    }
}

/// Encoding a new event into its stored form.
pub(crate) trait Encode {
    /// Encodes the event with a placeholder id, to be numbered later.
    fn encode_unnumbered(&self) -> Unnumbered;
    /// Encodes the event as it will be stored under `id`.
    fn encode(&self, id: &str) -> Vec<u8>;
    /// Encodes the event without its message, with placeholders for its id
    /// and span.
    fn encode_sharing(&self) -> UnnumberedSharing;
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
            headers: &self.message.headers,
            body: &self.message.body,
        };
        let mut out = vec![WHOLE];
        // Serialising plain owned data into a Vec cannot fail.
        out.extend(postcard::to_stdvec(&r).unwrap_or_default());
        out
    }

    fn encode_sharing(&self) -> UnnumberedSharing {
        let placeholder = event_id(ulid::Ulid::nil());
        let r = SharingRef {
            id: &placeholder,
            source: &self.source,
            vendor: &self.vendor,
            kind: &self.kind,
            entity: &self.entity,
            occurred_at: &self.occurred_at,
            dedupe_key: &self.dedupe_key,
            parsed: self.parsed,
            received_at_ms: self.received_at_ms,
            first: &placeholder,
            last: &placeholder,
        };
        let mut out = vec![SHARING];
        // Serialising plain owned data into a Vec cannot fail.
        out.extend(postcard::to_stdvec(&r).unwrap_or_default());
        UnnumberedSharing(out)
    }
}

/// Encodes a message stored once for the events split from it.
pub(crate) fn encode_message(message: &Message) -> Vec<u8> {
    let r = MessageRef {
        headers: &message.headers,
        body: &message.body,
    };
    let mut out = vec![MESSAGE_V1];
    // Serialising plain owned data into a Vec cannot fail.
    out.extend(postcard::to_stdvec(&r).unwrap_or_default());
    out
}

/// Decodes a stored message record.
pub(crate) fn decode_message(bytes: &[u8]) -> Result<Message, String> {
    match bytes.split_first() {
        Some((&MESSAGE_V1, rest)) => postcard::from_bytes::<MessageRecord>(rest)
            .map(|m| Message {
                headers: m.headers,
                body: m.body,
            })
            .map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unknown message format version {v}")),
        None => Err("empty message record".into()),
    }
}

/// The body of a format byte both event formats share: the leading fields.
fn leading(bytes: &[u8]) -> Result<&[u8], String> {
    match bytes.split_first() {
        Some((&(WHOLE | SHARING), rest)) => Ok(rest),
        Some((v, _)) => Err(format!("unknown record format version {v}")),
        None => Err("empty record".into()),
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
        postcard::take_from_bytes(leading(bytes)?)
            .map(|(fields, _rest)| fields)
            .map_err(|e| e.to_string())
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
        postcard::take_from_bytes(leading(bytes)?)
            .map(|(fields, _headers_and_body)| fields)
            .map_err(|e| e.to_string())
    }
}

/// A decoded stored record.
pub(crate) enum Decoded {
    /// The record holds its headers and body.
    Whole(EventRecord),
    /// The record's headers and body are in the message its span names.
    Sharing(Sharing),
}

/// An event whose headers and body are in a shared message: only
/// [`Sharing::with_message`] turns it into a whole [`EventRecord`].
pub(crate) struct Sharing(SharingRecord);

impl Sharing {
    /// The event's id.
    pub(crate) fn id(&self) -> &str {
        &self.0.id
    }

    /// The events its message was split into.
    pub(crate) fn span(&self) -> Span {
        Span {
            first: self.0.first.clone(),
            last: self.0.last.clone(),
        }
    }

    /// The id its message is stored under.
    pub(crate) fn message_id(&self) -> &str {
        &self.0.first
    }

    /// The whole event, given its message.
    pub(crate) fn with_message(self, message: Message) -> EventRecord {
        let r = self.0;
        EventRecord {
            id: r.id,
            source: r.source,
            vendor: r.vendor,
            kind: r.kind,
            entity: r.entity,
            occurred_at: r.occurred_at,
            dedupe_key: r.dedupe_key,
            parsed: r.parsed,
            received_at_ms: r.received_at_ms,
            headers: message.headers,
            body: message.body,
        }
    }
}

/// Decodes a stored record.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    match bytes.split_first() {
        Some((&WHOLE, rest)) => postcard::from_bytes(rest)
            .map(Decoded::Whole)
            .map_err(|e| e.to_string()),
        Some((&SHARING, rest)) => postcard::from_bytes(rest)
            .map(|r| Decoded::Sharing(Sharing(r)))
            .map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unknown record format version {v}")),
        None => Err("empty record".into()),
    }
}

/// The span of a record that shares its message; `None` for a whole one.
pub(crate) fn span_of(bytes: &[u8]) -> Result<Option<Span>, String> {
    match bytes.split_first() {
        Some((&SHARING, rest)) => postcard::from_bytes::<SpanFields<'_>>(rest)
            .map(|f| {
                Some(Span {
                    first: f.first.to_owned(),
                    last: f.last.to_owned(),
                })
            })
            .map_err(|e| e.to_string()),
        _ => leading(bytes).map(|_| None),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn event() -> NewEvent {
        NewEvent {
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
            message: Arc::new(Message {
                headers: vec![("x".into(), b"y".to_vec())],
                body: b"{}".to_vec(),
            }),
        }
    }

    fn whole(decoded: Decoded) -> EventRecord {
        match decoded {
            Decoded::Whole(r) => r,
            Decoded::Sharing(s) => panic!("{} shares a message", s.id()),
        }
    }

    #[test]
    fn a_numbered_record_decodes_with_its_id_and_everything_else_intact() {
        let event = event();
        let ulid = ulid::Ulid::new();
        let record = whole(decode(&event.encode_unnumbered().number(ulid)).unwrap());
        assert_eq!(record.id, event_id(ulid));
        assert_eq!(
            event.encode(&record.id),
            event.encode_unnumbered().number(ulid)
        );
        assert_eq!(record.body, b"{}");
        assert_eq!(span_of(&event.encode(&record.id)).unwrap(), None);
    }

    #[test]
    fn the_dedupe_fields_read_the_same_as_the_whole_record() {
        let bytes = event().encode("evt_1");
        let head = DedupeFields::decode(&bytes).unwrap();
        assert_eq!(
            (head.id, head.source, head.dedupe_key),
            ("evt_1", "hcp", Some("k"))
        );
    }

    #[test]
    fn a_sharing_record_carries_its_id_and_span_and_reads_whole_with_its_message() {
        let event = event();
        let (first, this, last) = (ulid::Ulid::new(), ulid::Ulid::new(), ulid::Ulid::new());
        let bytes = event.encode_sharing().number(this, first, last);
        let span = Span {
            first: event_id(first),
            last: event_id(last),
        };
        assert_eq!(span_of(&bytes).unwrap(), Some(span.clone()));
        let head = DedupeFields::decode(&bytes).unwrap();
        assert_eq!(
            (head.id, head.dedupe_key),
            (event_id(this).as_str(), Some("k"))
        );
        let head = HeadFields::decode(&bytes).unwrap();
        assert_eq!(head.kind, "job.completed");
        let Decoded::Sharing(sharing) = decode(&bytes).unwrap() else {
            panic!("a sharing record")
        };
        assert_eq!(sharing.span(), span);
        let message = decode_message(&encode_message(&event.message)).unwrap();
        let record = sharing.with_message(message);
        let expected = whole(decode(&event.encode(&event_id(this))).unwrap());
        assert_eq!(record, expected);
    }
}
