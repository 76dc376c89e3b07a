//! Shared normalization helpers: reading JSON and form bodies, building
//! composite dedupe keys, and the configurable field map that the generic
//! verifiers (`hmac`, `basic-auth`, `api-key`, `standard-webhooks`) use to
//! find kind, entity and dedupe key in a payload they know nothing about.

use serde_json::Value;

use super::{EntityRef, Normalized, VendorConfigError};

/// The body as JSON, when it is JSON. Never fails: a malformed body from a
/// verified sender is stored anyway (`parsed: false`).
pub(super) fn parse_json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// A JSON string or number as text (ids are numbers at some vendors and
/// strings at others). Empty strings, `null`, objects and arrays give `None`.
pub(super) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `scalar` of `value[key]`.
pub(super) fn scalar_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(scalar)
}

/// `value[key]` when it is a non-empty string.
pub(super) fn str_at<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The event to store when the body is not what the vendor documents: the
/// raw bytes are still stored and delivered, under kind `unknown`.
pub(super) fn unparsed(dedupe_key: Option<String>) -> Normalized {
    Normalized {
        kind: "unknown".to_owned(),
        entity: None,
        occurred_at: None,
        dedupe_key,
        parsed: false,
    }
}

/// Join the parts of a composite dedupe key with `|`, escaping `\` and `|`
/// inside parts, so that different part lists never give the same key.
pub(super) fn composite_key<S: AsRef<str>>(parts: &[S]) -> String {
    let mut key = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push('|');
        }
        for c in part.as_ref().chars() {
            if c == '|' || c == '\\' {
                key.push('\\');
            }
            key.push(c);
        }
    }
    key
}

/// Lower-case a vendor's entity type and keep it to `[a-z0-9_]`
/// (`Job Item` -> `job_item`).
pub(super) fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// Decode an `application/x-www-form-urlencoded` body into pairs, in order.
/// `None` when the body is not plausibly a form (not UTF-8 after decoding,
/// or a piece without `=` that is not empty).
pub(super) fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut pairs = Vec::new();
    for piece in text.trim_end_matches(['\r', '\n']).split('&') {
        if piece.is_empty() {
            continue;
        }
        let (name, value) = piece.split_once('=')?;
        pairs.push((percent_decode(name)?, percent_decode(value)?));
    }
    Some(pairs)
}

/// First value of `name` in form pairs.
pub(super) fn form_value<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A validated JSON pointer (`/data/id`) from a source's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pointer(String);

impl Pointer {
    /// Check `text` is a JSON pointer; the error says how to write one.
    pub(super) fn parse(option: &str, text: &str) -> Result<Self, String> {
        if text.starts_with('/') {
            return Ok(Pointer(text.to_owned()));
        }
        let suggestion = format!("/{}", text.trim_start_matches(['$', '.']).replace('.', "/"));
        Err(format!(
            "`{option} = \"{text}\"` is not a JSON pointer; write it with slashes, e.g. `{option} = \"{suggestion}\"`"
        ))
    }

    /// The value the pointer names, as text (see [`scalar`]).
    pub(super) fn get(&self, value: &Value) -> Option<String> {
        value.pointer(&self.0).and_then(scalar)
    }
}

/// Where the generic verifiers find kind, entity, occurred-at and dedupe key.
/// Each is a JSON pointer into the body; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FieldMap {
    /// Kind; unset: the first string among the top-level `type`, `event`,
    /// `event_type`, `eventType`, `topic`.
    pub kind: Option<Pointer>,
    /// Dedupe key; unset: no dedupe (every delivery is stored).
    pub id: Option<Pointer>,
    /// Entity type; unset: the part of the kind before its first `.`.
    pub entity_type: Option<Pointer>,
    /// Entity id; unset: no entity.
    pub entity_id: Option<Pointer>,
    /// Entity URL.
    pub entity_url: Option<Pointer>,
    /// Occurred-at.
    pub occurred_at: Option<Pointer>,
}

/// Top-level fields tried for the kind when `kind_field` is not set.
pub(super) const DEFAULT_KIND_FIELDS: &[&str] =
    &["type", "event", "event_type", "eventType", "topic"];

/// The option values (`kind_field = "..."` etc.) before validation.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FieldOptions<'a> {
    /// `kind_field`.
    pub kind_field: Option<&'a str>,
    /// `id_field`.
    pub id_field: Option<&'a str>,
    /// `entity_type_field`.
    pub entity_type_field: Option<&'a str>,
    /// `entity_id_field`.
    pub entity_id_field: Option<&'a str>,
    /// `entity_url_field`.
    pub entity_url_field: Option<&'a str>,
    /// `occurred_at_field`.
    pub occurred_at_field: Option<&'a str>,
}

impl FieldMap {
    /// Validate the `*_field` options of `vendor`.
    pub(super) fn from_options(
        vendor: &'static str,
        o: FieldOptions<'_>,
    ) -> Result<Self, VendorConfigError> {
        let one =
            |option: &str, text: Option<&str>| -> Result<Option<Pointer>, VendorConfigError> {
                text.map(|t| Pointer::parse(option, t))
                    .transpose()
                    .map_err(|message| VendorConfigError::Invalid { vendor, message })
            };
        Ok(FieldMap {
            kind: one("kind_field", o.kind_field)?,
            id: one("id_field", o.id_field)?,
            entity_type: one("entity_type_field", o.entity_type_field)?,
            entity_id: one("entity_id_field", o.entity_id_field)?,
            entity_url: one("entity_url_field", o.entity_url_field)?,
            occurred_at: one("occurred_at_field", o.occurred_at_field)?,
        })
    }

    /// Normalize a body with this map. `dedupe_key` (e.g. a header id)
    /// wins over `id_field`.
    pub(super) fn normalize(&self, body: &[u8], dedupe_key: Option<String>) -> Normalized {
        let Some(value) = parse_json(body) else {
            return unparsed(dedupe_key);
        };
        let kind = match &self.kind {
            Some(pointer) => pointer.get(&value),
            None => DEFAULT_KIND_FIELDS
                .iter()
                .find_map(|k| str_at(&value, k).map(str::to_owned)),
        };
        let kind = kind.unwrap_or_else(|| "unknown".to_owned());
        let entity = self
            .entity_id
            .as_ref()
            .and_then(|p| p.get(&value))
            .map(|id| {
                let entity_kind = match &self.entity_type {
                    Some(p) => p.get(&value).map(|t| slug(&t)),
                    None => kind.split_once('.').map(|(first, _)| first.to_owned()),
                };
                EntityRef {
                    kind: entity_kind
                        .filter(|k| !k.is_empty())
                        .unwrap_or_else(|| "unknown".to_owned()),
                    id,
                    url: self.entity_url.as_ref().and_then(|p| p.get(&value)),
                }
            });
        Normalized {
            kind,
            entity,
            occurred_at: self.occurred_at.as_ref().and_then(|p| p.get(&value)),
            dedupe_key: dedupe_key.or_else(|| self.id.as_ref().and_then(|p| p.get(&value))),
            parsed: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_do_not_collide_when_parts_contain_the_separator() {
        assert_ne!(composite_key(&["a|b", "c"]), composite_key(&["a", "b|c"]));
        assert_ne!(composite_key(&["a\\", "|b"]), composite_key(&["a\\|", "b"]));
        assert_eq!(composite_key(&["job", "1"]), "job|1");
    }

    #[test]
    fn ids_may_be_strings_or_numbers() {
        let v: Value = serde_json::json!({"a": "x", "b": 42, "c": "", "d": null, "e": {}});
        assert_eq!(scalar_at(&v, "a").as_deref(), Some("x"));
        assert_eq!(scalar_at(&v, "b").as_deref(), Some("42"));
        assert_eq!(scalar_at(&v, "c"), None);
        assert_eq!(scalar_at(&v, "d"), None);
        assert_eq!(scalar_at(&v, "e"), None);
    }

    #[test]
    fn form_bodies_are_percent_decoded_in_order() {
        let pairs = form_pairs(b"mode=subscribe&challenge=a%2Bb+c&empty=").expect("a form");
        assert_eq!(form_value(&pairs, "mode"), Some("subscribe"));
        assert_eq!(form_value(&pairs, "challenge"), Some("a+b c"));
        assert_eq!(form_value(&pairs, "empty"), Some(""));
        assert_eq!(form_pairs(b"{\"json\":true}"), None);
        assert_eq!(form_pairs(b"a=%zz"), None);
        assert_eq!(form_pairs(b"a=%f"), None);
    }

    #[test]
    fn json_pointer_options_explain_how_to_fix_a_dotted_path() {
        let err = Pointer::parse("kind_field", "data.event").expect_err("dotted path");
        assert!(err.contains("\"/data/event\""), "{err}");
    }

    #[test]
    fn slug_lowercases_and_keeps_words_apart() {
        assert_eq!(slug(" Job Item "), "job_item");
        assert_eq!(slug("jobitem"), "jobitem");
    }

    #[test]
    fn field_map_finds_kind_in_common_fields_by_default_and_entity_when_configured() {
        let map = FieldMap {
            entity_id: Some(Pointer("/data/id".into())),
            ..FieldMap::default()
        };
        let n = map.normalize(br#"{"event":"job.updated","data":{"id":7}}"#, None);
        assert_eq!(n.kind, "job.updated");
        assert_eq!(
            n.entity,
            Some(EntityRef {
                kind: "job".into(),
                id: "7".into(),
                url: None
            })
        );
        assert_eq!(n.dedupe_key, None);
        let n = map.normalize(b"not json", Some("k".into()));
        assert!(!n.parsed);
        assert_eq!(n.kind, "unknown");
        assert_eq!(n.dedupe_key.as_deref(), Some("k"));
    }
}
