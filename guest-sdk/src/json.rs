//! Reading JSON without copying it: borrowed text, ids that are strings at
//! one vendor and numbers at another, and raw values kept as the vendor sent
//! them.
//!
//! The vendor views of [`crate::vendors`] are built from these types, and a
//! plugin's own `#[derive(Deserialize)]` structs can use them too. Each
//! borrows from the event body, so mark such fields `#[serde(borrow)]`:
//!
//! ```
//! use fieldhook_guest::json::{Id, RawJson, Text};
//!
//! #[derive(serde::Deserialize)]
//! struct Job<'a> {
//!     #[serde(borrow)]
//!     id: Id<'a>,
//!     #[serde(borrow)]
//!     name: Option<Text<'a>>,
//!     #[serde(borrow)]
//!     total: Option<RawJson<'a>>,
//! }
//!
//! let body = br#"{"id": 42, "name": "AC tune-up", "total": 18500.0}"#;
//! let job: Job<'_> = serde_json::from_slice(body)?;
//! assert_eq!(job.id, "42");
//! assert_eq!(job.name.as_deref(), Some("AC tune-up"));
//! assert_eq!(job.total.map(|t| t.as_json()), Some("18500.0"));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON string, borrowed from the body when it has no escapes (`\"`,
/// `\/`, `\u00e9`) and copied only when it does.
///
/// Use it instead of `Cow<'a, str>` inside `Option` or `Vec`: serde borrows a
/// bare `#[serde(borrow)] Cow<'a, str>` field but copies one nested in
/// another type. It dereferences to `str`, so `text.as_deref()`,
/// `&*text` and `text == "job"` work as for a `String`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as a `Cow`, borrowed when it was borrowed.
    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Self {
        Text(Cow::Borrowed(text))
    }
}

impl From<String> for Text<'_> {
    fn from(text: String) -> Self {
        Text(Cow::Owned(text))
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CowStr).map(Text)
    }
}

struct CowStr;

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// An id that one vendor sends as a string (`"job_7f3e"`) and another as an
/// integer (`34872`). Compare it with text (`id == "34872"` holds for both
/// forms) or print it; [`Id::as_i64`] reads either form as a number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Id<'a> {
    /// Sent as a JSON string.
    Text(Cow<'a, str>),
    /// Sent as a JSON integer.
    Number(i64),
}

impl Id<'_> {
    /// The id when it was sent as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Id::Text(text) => Some(text),
            Id::Number(_) => None,
        }
    }

    /// The id as a number: an integer as sent, or a string of digits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Id::Text(text) => text.parse().ok(),
            Id::Number(n) => Some(*n),
        }
    }
}

impl fmt::Debug for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Text(text) => fmt::Debug::fmt(&**text, f),
            Id::Number(n) => fmt::Debug::fmt(n, f),
        }
    }
}

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Text(text) => f.write_str(text),
            Id::Number(n) => fmt::Display::fmt(n, f),
        }
    }
}

/// True when `text` is exactly how `n` prints (`"7"`, not `"07"`).
fn prints_as(n: i64, text: &str) -> bool {
    use std::io::Write;
    let mut buf = [0u8; 20];
    let unused = {
        let mut cursor = &mut buf[..];
        if write!(cursor, "{n}").is_err() {
            return false;
        }
        cursor.len()
    };
    buf[..buf.len() - unused] == *text.as_bytes()
}

impl PartialEq<str> for Id<'_> {
    fn eq(&self, other: &str) -> bool {
        match self {
            Id::Text(text) => **text == *other,
            Id::Number(n) => prints_as(*n, other),
        }
    }
}

impl PartialEq<&str> for Id<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl Serialize for Id<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Text(text) => serializer.serialize_str(text),
            Id::Number(n) => serializer.serialize_i64(*n),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Id<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id (a string or an integer)")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Id::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Id::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Id::Text(Cow::Owned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Id::Number(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(match i64::try_from(v) {
            Ok(n) => Id::Number(n),
            Err(_) => Id::Text(Cow::Owned(v.to_string())),
        })
    }
}

/// Any JSON value, kept as the exact text the vendor sent (borrowed from the
/// body, never copied or re-parsed into a tree).
///
/// Serializing it writes that text back unchanged, so a plugin can pass a
/// vendor's value through (`"total_cents": job.total_amount`) without
/// knowing its type. Read it with [`RawJson::as_str`], [`RawJson::as_i64`],
/// [`RawJson::get`] (one key of an object) or [`RawJson::parse`] (into a
/// struct).
#[derive(Clone, Copy)]
pub struct RawJson<'a>(pub &'a RawValue);

impl<'a> RawJson<'a> {
    /// The value's JSON text, exactly as received: `"abc"` with its quotes,
    /// `24500`, `{"id":1}`.
    pub fn as_json(&self) -> &'a str {
        self.0.get()
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        self.as_json() == "null"
    }

    /// True for an object (`{...}`).
    pub fn is_object(&self) -> bool {
        self.as_json().starts_with('{')
    }

    /// True for an array (`[...]`).
    pub fn is_array(&self) -> bool {
        self.as_json().starts_with('[')
    }

    /// The value when it is a string, borrowed unless it has escapes.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        if !self.as_json().starts_with('"') {
            return None;
        }
        self.parse::<Text<'a>>().ok().map(Text::into_cow)
    }

    /// The value when it is an integer that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        self.parse().ok()
    }

    /// The value when it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        self.parse().ok()
    }

    /// The value when it is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        self.parse().ok()
    }

    /// The value of `key` when this is an object that has it (the first one
    /// when the key repeats); `None` otherwise. Scans the object without
    /// building it.
    pub fn get(&self, key: &str) -> Option<RawJson<'a>> {
        if !self.is_object() {
            return None;
        }
        let mut deserializer = serde_json::Deserializer::from_str(self.as_json());
        deserializer
            .deserialize_map(Lookup(key))
            .ok()
            .flatten()
            .map(RawJson)
    }

    /// The value deserialized into `T`, which may borrow from the body.
    pub fn parse<T: Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.as_json())
    }

    /// The value as a `serde_json::Value` tree (allocates; prefer
    /// [`RawJson::parse`] into a struct).
    pub fn to_value(&self) -> serde_json::Value {
        // A RawValue always holds valid JSON.
        self.parse().unwrap_or(serde_json::Value::Null)
    }
}

struct Lookup<'k>(&'k str);

impl<'de> Visitor<'de> for Lookup<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            if found.is_none() && key == *self.0 {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

impl fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

impl fmt::Display for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(deserializer).map(RawJson)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn text_borrows_from_the_body_unless_it_has_escapes() {
        let plain: Vec<Text<'_>> = serde_json::from_str(r#"["job", "a\/b"]"#).unwrap();
        assert!(matches!(plain[0].0, Cow::Borrowed("job")));
        assert!(matches!(&plain[1].0, Cow::Owned(s) if s == "a/b"));
        assert_eq!(plain[0], "job");
    }

    #[test]
    fn ids_compare_with_text_whether_sent_as_strings_or_integers() {
        let ids: Vec<Id<'_>> = serde_json::from_str(r#"["job_1", 34872, "34872"]"#).unwrap();
        assert_eq!(ids[0], "job_1");
        assert_eq!(ids[1], "34872");
        assert_ne!(ids[1], "034872");
        assert_eq!(ids[1].as_i64(), Some(34872));
        assert_eq!(ids[2].as_i64(), Some(34872));
        assert_eq!(ids[1].to_string(), "34872");
        assert_eq!(ids[0].as_str(), Some("job_1"));
        assert_eq!(
            serde_json::to_string(&ids).unwrap(),
            r#"["job_1",34872,"34872"]"#
        );
        assert!(serde_json::from_str::<Id<'_>>("1.5").is_err());
        assert!(serde_json::from_str::<Id<'_>>("{}").is_err());
    }

    #[test]
    fn raw_json_keeps_the_text_and_reads_what_is_asked() {
        let raw: RawJson<'_> =
            serde_json::from_str(r#"{"a": "x\"y", "n": 24500, "a": 2, "o": {"k": null}}"#).unwrap();
        assert!(raw.is_object());
        assert_eq!(
            raw.get("a").and_then(|v| v.as_str()).as_deref(),
            Some("x\"y")
        );
        assert_eq!(raw.get("n").and_then(|v| v.as_i64()), Some(24500));
        assert_eq!(raw.get("n").and_then(|v| v.as_str()), None);
        assert_eq!(
            raw.get("o").and_then(|o| o.get("k")).map(|k| k.is_null()),
            Some(true)
        );
        assert!(raw.get("missing").is_none());
        assert!(raw.get("n").and_then(|n| n.get("x")).is_none());
        assert_eq!(
            serde_json::to_string(&raw.get("o")).unwrap(),
            r#"{"k": null}"#
        );
        assert_eq!(raw.to_value()["n"], 24500);
    }
}
