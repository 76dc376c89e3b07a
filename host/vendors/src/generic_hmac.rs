//! Generic HMAC: for any sender that signs the raw body (optionally with a
//! timestamp) and puts the digest in a header — Zuper, FieldEdge, in-house
//! systems.
//!
//! Everything is configurable: `algorithm` (sha1, sha256, sha512),
//! `header`, `encoding` (hex, base64), `prefix` (`sha256=`), and an optional
//! signed timestamp (`timestamp_header`, `tolerance_secs`) whose place in the
//! signed bytes is given by the `signed_payload` template, e.g.
//! `"{timestamp}.{body}"` or Slack's `"v0:{timestamp}:{body}"`.
//! Kind, entity and dedupe key come from JSON pointers (`kind_field`, ...).

use serde::Deserialize;

use super::payload::{FieldMap, FieldOptions};
use super::signature::{
    Algorithm, Encoding, check_tolerance, ct_eq, describe_skew, parse_timestamp, required_header,
    secret_label, shorten,
};
use super::{Inbound, Rejection, Secret, SignedSample, Trace, Vendor, VendorConfigError, Verdict};

const NAME: &str = "hmac";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "default_algorithm")]
    algorithm: Algorithm,
    #[serde(default = "default_header")]
    header: String,
    #[serde(default = "default_encoding")]
    encoding: Encoding,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    timestamp_header: Option<String>,
    #[serde(default)]
    signed_payload: Option<String>,
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
    #[serde(default)]
    kind_field: Option<String>,
    #[serde(default)]
    id_field: Option<String>,
    #[serde(default)]
    entity_type_field: Option<String>,
    #[serde(default)]
    entity_id_field: Option<String>,
    #[serde(default)]
    entity_url_field: Option<String>,
    #[serde(default)]
    occurred_at_field: Option<String>,
}

fn default_algorithm() -> Algorithm {
    Algorithm::Sha256
}
fn default_header() -> String {
    "X-Signature".to_owned()
}
fn default_encoding() -> Encoding {
    Encoding::Hex
}
fn default_tolerance() -> u64 {
    300
}

/// One piece of the signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Body,
    Timestamp,
}

/// Parse a `signed_payload` template: literal text with exactly one
/// `{body}` and, when a timestamp header is configured, `{timestamp}`.
fn parse_template(template: &str, has_timestamp_header: bool) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = template;
    let (mut bodies, mut timestamps) = (0, 0);
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after.find('}').map(|c| c + 1);
        let placeholder = close.map(|c| &after[..c]);
        let piece = match placeholder {
            Some("{body}") => Piece::Body,
            Some("{timestamp}") => Piece::Timestamp,
            Some(other)
                if other[1..other.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                return Err(format!(
                    "`signed_payload` has an unknown placeholder `{other}`; only `{{body}}` and `{{timestamp}}` exist"
                ));
            }
            _ => {
                literal.push('{');
                rest = &after[1..];
                continue;
            }
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal).into_bytes()));
        }
        match piece {
            Piece::Body => bodies += 1,
            Piece::Timestamp => timestamps += 1,
            Piece::Literal(_) => {}
        }
        pieces.push(piece);
        rest = &after[close.unwrap_or(after.len())..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal.into_bytes()));
    }
    if bodies != 1 {
        return Err(format!(
            "`signed_payload = \"{template}\"` must contain `{{body}}` exactly once (e.g. \"{{timestamp}}.{{body}}\")"
        ));
    }
    match (timestamps, has_timestamp_header) {
        (0, true) => Err(format!(
            "`timestamp_header` is set but `signed_payload = \"{template}\"` does not sign `{{timestamp}}`; an unsigned \
             timestamp protects nothing: add `{{timestamp}}` (e.g. \"{{timestamp}}.{{body}}\") or drop `timestamp_header`"
        )),
        (n, false) if n > 0 => Err(format!(
            "`signed_payload = \"{template}\"` uses `{{timestamp}}`; set `timestamp_header` to the header that carries it"
        )),
        _ => Ok(pieces),
    }
}

fn describe_template(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Piece::Body => "{body}".to_owned(),
            Piece::Timestamp => "{timestamp}".to_owned(),
        })
        .collect()
}

/// Generic HMAC verifier.
#[derive(Debug)]
pub(super) struct GenericHmac {
    secrets: Vec<Secret>,
    algorithm: Algorithm,
    header: String,
    encoding: Encoding,
    prefix: Option<String>,
    timestamp_header: Option<String>,
    template: Vec<Piece>,
    tolerance: u64,
    fields: FieldMap,
}

impl GenericHmac {
    /// Build from secrets (the HMAC key as bytes) and options.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let o: Options = super::parse_options(NAME, options)?;
        let invalid = |m: String| super::invalid(NAME, m);
        check_header_name("header", &o.header).map_err(invalid)?;
        if let Some(ts) = &o.timestamp_header {
            check_header_name("timestamp_header", ts).map_err(invalid)?;
        }
        let default_template = if o.timestamp_header.is_some() {
            "{timestamp}.{body}"
        } else {
            "{body}"
        };
        let template = parse_template(
            o.signed_payload.as_deref().unwrap_or(default_template),
            o.timestamp_header.is_some(),
        )
        .map_err(invalid)?;
        let fields = FieldMap::from_options(
            NAME,
            FieldOptions {
                kind_field: o.kind_field.as_deref(),
                id_field: o.id_field.as_deref(),
                entity_type_field: o.entity_type_field.as_deref(),
                entity_id_field: o.entity_id_field.as_deref(),
                entity_url_field: o.entity_url_field.as_deref(),
                occurred_at_field: o.occurred_at_field.as_deref(),
            },
        )?;
        Ok(GenericHmac {
            secrets,
            algorithm: o.algorithm,
            header: o.header,
            encoding: o.encoding,
            prefix: o.prefix.filter(|p| !p.is_empty()),
            timestamp_header: o.timestamp_header,
            template,
            tolerance: o.tolerance_secs,
            fields,
        })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        let value = required_header(req.headers, &self.header)?;
        let timestamp = match &self.timestamp_header {
            None => None,
            Some(name) => {
                let text = required_header(req.headers, name)?;
                Some((name, text, parse_timestamp(name, text)?))
            }
        };

        // Several signatures may be listed, separated by commas or spaces
        // (a sender rotating its key); each must carry the prefix.
        let mut candidates = Vec::new();
        for piece in value.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
            let digits = match &self.prefix {
                None => Some(piece),
                Some(prefix) => strip_prefix_ignore_case(piece, prefix),
            };
            let Some(digits) = digits else {
                trace.note(|| {
                    format!(
                        "{}: `{}` lacks the prefix `{}`; ignored",
                        self.header,
                        shorten(piece, 24),
                        self.prefix.as_deref().unwrap_or("")
                    )
                });
                continue;
            };
            match self.encoding.decode(digits) {
                Some(bytes) => candidates.push(bytes),
                None => trace.note(|| {
                    format!(
                        "{}: `{}` is not {}; ignored",
                        self.header,
                        shorten(piece, 24),
                        self.encoding.label()
                    )
                }),
            }
        }
        if candidates.is_empty() {
            return Err(Rejection::MalformedHeader {
                name: self.header.clone(),
                why: match &self.prefix {
                    Some(p) => format!(
                        "no {} signature after the prefix `{p}`",
                        self.encoding.label()
                    ),
                    None => format!("no {} signature", self.encoding.label()),
                },
            });
        }
        trace.note(|| {
            format!(
                "{}: {} candidate signature(s), {}; signed bytes `{}` with {}",
                self.header,
                candidates.len(),
                self.encoding.label(),
                describe_template(&self.template),
                self.algorithm.label()
            )
        });

        let ts_bytes = timestamp
            .map(|(_, text, _)| text.as_bytes())
            .unwrap_or_default();
        let parts: Vec<&[u8]> = self
            .template
            .iter()
            .map(|p| match p {
                Piece::Literal(bytes) => bytes.as_slice(),
                Piece::Body => req.body,
                Piece::Timestamp => ts_bytes,
            })
            .collect();
        let mut matched = None;
        for (i, secret) in self.secrets.iter().enumerate() {
            let expected = self.algorithm.mac(secret.expose(), &parts);
            let hit = candidates.iter().any(|c| ct_eq(c, &expected));
            trace.note(|| {
                format!(
                    "{}: expected {}{} -> {}",
                    secret_label(i),
                    self.prefix.as_deref().unwrap_or(""),
                    self.encoding.encode(&expected),
                    if hit { "match" } else { "no match" }
                )
            });
            if hit && matched.is_none() {
                matched = Some(i);
            }
        }
        if matched.is_none() {
            return Err(Rejection::BadSignature(format!(
                "{} of `{}` matches none of {} configured secret(s)",
                self.algorithm.label(),
                self.header,
                self.secrets.len()
            )));
        }

        if let Some((name, _, ts)) = timestamp {
            let result = check_tolerance(ts, req.now, self.tolerance);
            trace.note(|| {
                format!(
                    "{name}: {ts} is {}, tolerance {}s{}",
                    describe_skew(req.now.saturating_sub(ts)),
                    self.tolerance,
                    if result.is_ok() { ": ok" } else { "" }
                )
            });
            result?;
        }
        Ok(Verdict::Events(vec![self.fields.normalize(req.body, None)]))
    }
}

/// `Some(rest)` when `text` starts with `prefix`, ignoring ASCII case.
pub(super) fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A configured header name must be a valid HTTP header name.
pub(super) fn check_header_name(option: &str, name: &str) -> Result<(), String> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| format!("`{option} = \"{name}\"` is not a valid HTTP header name"))
}

impl Vendor for GenericHmac {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, req: &Inbound<'_>) -> Result<Verdict, Rejection> {
        self.verify(req, &mut Trace::off())
    }

    fn check_traced(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        self.verify(req, trace)
    }

    fn sign_sample(&self, body: &[u8], now: i64) -> Option<SignedSample> {
        let secret = self.secrets.first()?;
        let ts = now.to_string();
        let parts: Vec<&[u8]> = self
            .template
            .iter()
            .map(|p| match p {
                Piece::Literal(bytes) => bytes.as_slice(),
                Piece::Body => body,
                Piece::Timestamp => ts.as_bytes(),
            })
            .collect();
        let mac = self.algorithm.mac(secret.expose(), &parts);
        let mut headers = vec![(
            self.header.clone(),
            format!(
                "{}{}",
                self.prefix.as_deref().unwrap_or(""),
                self.encoding.encode(&mac)
            ),
        )];
        if let Some(name) = &self.timestamp_header {
            headers.push((name.clone(), ts));
        }
        Some(SignedSample::with_headers(headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{build_with, headers, one_event, req};
    use crate::{EntityRef, build};

    // Signed by testdata/sign_vectors.py with Python's hmac/hashlib.
    const G_SECRET: &str = r#"generic-hmac-secret-current"#;
    const G_PREVIOUS_SECRET: &str = r#"generic-hmac-secret-previous"#;
    const G_BODY: &str = r#"{"event":"job.created","id":"evt_1","job":{"id":"J-77"}}"#;
    const G_SHA256_HEX: &str =
        r#"131df65bb7ab1e1747b8913dd3d7272ec8d9d42733ca6abd678b42a1f84982be"#;
    const G_SHA1_B64_PREFIXED: &str = r#"sha1=Di60kN4u0TUzvVJ1y9kzHZIG2VY="#;
    const G_SHA512_B64_PREFIXED: &str = r#"sha512=6a5NLExnqjLmXaqbflnDj9VFihv7PeL4/i34+CroEnvv5hueIGDqKIrVjj4Nt1cN/QjkUSNjoT1QezICtngGBA=="#;
    const G_SHA256_HEX_PREVIOUS: &str =
        r#"161e4a8c83e717a7202b16bed73d2b3724033d0567e6722a54881d8a9672d681"#;
    const G_SHA256_HEX_TS_DOT_BODY: &str =
        r#"dbb8aba678157c6ab6462a68180f9e7030b687b315b427e8dd53e5057325413c"#;
    const G_SHA256_HEX_SLACK_STYLE: &str =
        r#"v0=50e3b8771fc2f37700e9f61f4ed61c72075232cc5e7b486c5b2b094942796394"#;
    const G_TS: i64 = 1700000000;

    fn check(
        options: &str,
        secrets: &[&str],
        pairs: &[(&str, &str)],
        body: &str,
        now: i64,
    ) -> Result<Verdict, Rejection> {
        let v = build_with(NAME, secrets, options);
        let h = headers(pairs);
        v.check(&req(&h, body.as_bytes(), None, now))
    }

    fn config_error(options: &str) -> String {
        let table: toml::Table = toml::from_str(options).expect("test TOML");
        build(NAME, vec![Secret::new(b"k".to_vec())], table)
            .expect_err("config error")
            .to_string()
    }

    #[test]
    fn defaults_are_hex_hmac_sha256_of_the_body_in_x_signature() {
        let event = one_event(check(
            "",
            &[G_SECRET],
            &[("X-Signature", G_SHA256_HEX)],
            G_BODY,
            0,
        ));
        assert_eq!(event.kind, "job.created");
        assert_eq!(event.dedupe_key, None, "no dedupe unless id_field is set");
    }

    #[test]
    fn changing_one_body_byte_is_rejected() {
        let r = check(
            "",
            &[G_SECRET],
            &[("X-Signature", G_SHA256_HEX)],
            &G_BODY.replace("J-77", "J-78"),
            0,
        );
        assert!(matches!(r, Err(Rejection::BadSignature(_))), "{r:?}");
    }

    #[test]
    fn sha1_base64_with_prefix_is_accepted() {
        let options = r#"algorithm = "sha1"
encoding = "base64"
prefix = "sha1="
header = "X-Hub-Signature""#;
        one_event(check(
            options,
            &[G_SECRET],
            &[("X-Hub-Signature", G_SHA1_B64_PREFIXED)],
            G_BODY,
            0,
        ));
    }

    #[test]
    fn sha512_base64_with_prefix_is_accepted() {
        let options = r#"algorithm = "sha512"
encoding = "base64"
prefix = "sha512=""#;
        one_event(check(
            options,
            &[G_SECRET],
            &[("X-Signature", G_SHA512_B64_PREFIXED)],
            G_BODY,
            0,
        ));
    }

    #[test]
    fn a_configured_prefix_is_required() {
        let options = r#"algorithm = "sha1"
encoding = "base64"
prefix = "sha256=""#;
        let r = check(
            options,
            &[G_SECRET],
            &[("X-Signature", G_SHA1_B64_PREFIXED)],
            G_BODY,
            0,
        );
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn the_wrong_algorithm_does_not_verify() {
        let options = r#"algorithm = "sha256"
encoding = "base64"
prefix = "sha1=""#;
        let r = check(
            options,
            &[G_SECRET],
            &[("X-Signature", G_SHA1_B64_PREFIXED)],
            G_BODY,
            0,
        );
        assert!(matches!(r, Err(Rejection::BadSignature(_))), "{r:?}");
    }

    #[test]
    fn during_rotation_the_previous_secret_verifies() {
        one_event(check(
            "",
            &[G_SECRET, G_PREVIOUS_SECRET],
            &[("X-Signature", G_SHA256_HEX_PREVIOUS)],
            G_BODY,
            0,
        ));
        let r = check(
            "",
            &[G_SECRET],
            &[("X-Signature", G_SHA256_HEX_PREVIOUS)],
            G_BODY,
            0,
        );
        assert!(matches!(r, Err(Rejection::BadSignature(_))));
    }

    #[test]
    fn one_good_signature_in_a_comma_separated_list_is_enough() {
        let list = format!("{G_SHA256_HEX_PREVIOUS}, {G_SHA256_HEX}");
        one_event(check("", &[G_SECRET], &[("X-Signature", &list)], G_BODY, 0));
    }

    #[test]
    fn a_timestamp_header_signs_timestamp_dot_body_by_default() {
        let options = r#"timestamp_header = "X-Timestamp""#;
        let pairs = [
            ("X-Signature", G_SHA256_HEX_TS_DOT_BODY),
            ("X-Timestamp", "1700000000"),
        ];
        one_event(check(options, &[G_SECRET], &pairs, G_BODY, G_TS + 5));
        let missing = check(options, &[G_SECRET], &pairs[..1], G_BODY, G_TS);
        assert_eq!(missing, Err(Rejection::MissingHeader("X-Timestamp".into())));
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected() {
        let options = r#"timestamp_header = "X-Timestamp"
tolerance_secs = 60"#;
        let pairs = [
            ("X-Signature", G_SHA256_HEX_TS_DOT_BODY),
            ("X-Timestamp", "1700000000"),
        ];
        assert!(matches!(
            check(options, &[G_SECRET], &pairs, G_BODY, G_TS + 61),
            Err(Rejection::StaleTimestamp { skew: 61, .. })
        ));
        assert!(matches!(
            check(options, &[G_SECRET], &pairs, G_BODY, G_TS - 61),
            Err(Rejection::StaleTimestamp { skew: -61, .. })
        ));
        one_event(check(options, &[G_SECRET], &pairs, G_BODY, G_TS + 60));
    }

    #[test]
    fn signed_payload_template_supports_slack_style_signing() {
        let options = r#"timestamp_header = "X-Slack-Request-Timestamp"
header = "X-Slack-Signature"
prefix = "v0="
signed_payload = "v0:{timestamp}:{body}""#;
        let pairs = [
            ("X-Slack-Signature", G_SHA256_HEX_SLACK_STYLE),
            ("X-Slack-Request-Timestamp", "1700000000"),
        ];
        one_event(check(options, &[G_SECRET], &pairs, G_BODY, G_TS));
    }

    #[test]
    fn signed_payload_templates_are_validated_at_startup() {
        assert!(config_error(r#"signed_payload = "{timestamp}""#).contains("{body}` exactly once"));
        assert!(
            config_error(r#"signed_payload = "{ts}.{body}""#)
                .contains("unknown placeholder `{ts}`")
        );
        assert!(
            config_error(r#"signed_payload = "{timestamp}.{body}""#)
                .contains("set `timestamp_header`")
        );
        assert!(
            config_error(
                r#"timestamp_header = "X-T"
signed_payload = "{body}""#
            )
            .contains("unsigned timestamp")
        );
    }

    #[test]
    fn bad_option_values_say_what_is_allowed() {
        let err = config_error(r#"algorithm = "md5""#);
        assert!(err.contains("sha1") && err.contains("sha512"), "{err}");
        let err = config_error(r#"header = "X Bad""#);
        assert!(err.contains("not a valid HTTP header name"), "{err}");
        let err = config_error(r#"kind_field = "data.type""#);
        assert!(err.contains("/data/type"), "{err}");
    }

    #[test]
    fn kind_entity_and_dedupe_come_from_json_pointers() {
        let options = r#"kind_field = "/event"
id_field = "/id"
entity_id_field = "/job/id""#;
        let event = one_event(check(
            options,
            &[G_SECRET],
            &[("X-Signature", G_SHA256_HEX)],
            G_BODY,
            0,
        ));
        assert_eq!(event.kind, "job.created");
        assert_eq!(event.dedupe_key.as_deref(), Some("evt_1"));
        assert_eq!(
            event.entity,
            Some(EntityRef {
                kind: "job".into(),
                id: "J-77".into(),
                url: None
            })
        );
    }

    #[test]
    fn a_missing_signature_header_is_named_and_a_repeated_one_is_malformed() {
        assert_eq!(
            check("", &[G_SECRET], &[], G_BODY, 0),
            Err(Rejection::MissingHeader("X-Signature".into()))
        );
        let r = check(
            "",
            &[G_SECRET],
            &[("X-Signature", G_SHA256_HEX), ("X-Signature", G_SHA256_HEX)],
            G_BODY,
            0,
        );
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn literal_braces_in_templates_are_kept() {
        let pieces = parse_template("{ {body} }", false).expect("valid");
        assert_eq!(
            pieces,
            vec![
                Piece::Literal(b"{ ".to_vec()),
                Piece::Body,
                Piece::Literal(b" }".to_vec())
            ]
        );
    }
}
