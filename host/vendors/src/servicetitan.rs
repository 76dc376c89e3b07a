//! ServiceTitan (including Scheduling Pro).
//!
//! ServiceTitan does not publish the signature header or its encoding
//! (shared/vendors.md: **guess**), so both are configurable and the default
//! tries everything integrators have seen: HMAC-SHA256 of the raw body, hex
//! or base64, with or without a `sha256=` prefix, in `X-ServiceTitan-Signature`,
//! `ServiceTitan-Signature` or `X-ST-Signature`. The HMAC key is optional on
//! ServiceTitan's side, but fieldhook requires one: an unsigned source would
//! accept anything from anyone.
//!
//! Envelope (also a guess): `eventId` (dedupe), `eventType` (kind),
//! `tenantId`, `data.id` (entity). Scheduling Pro's "Session Completed" and
//! "Qualified Abandoned Session" become `scheduling.session_completed` and
//! `scheduling.session_abandoned`.

use serde::Deserialize;

use super::generic_hmac::{check_header_name, strip_prefix_ignore_case};
use super::payload::{parse_json, scalar_at, slug, str_at, unparsed};
use super::signature::{Encoding, ct_eq, header, hmac_sha256, secret_label, shorten};
use super::{
    EntityRef, Inbound, Normalized, Rejection, Secret, SignedSample, Trace, Vendor,
    VendorConfigError, Verdict,
};

const NAME: &str = "servicetitan";
const DEFAULT_HEADERS: &[&str] = &[
    "X-ServiceTitan-Signature",
    "ServiceTitan-Signature",
    "X-ST-Signature",
];

/// Which encodings to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EncodingChoice {
    Hex,
    Base64,
    Any,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "default_headers")]
    headers: Vec<String>,
    #[serde(default = "default_encoding")]
    encoding: EncodingChoice,
}

fn default_headers() -> Vec<String> {
    DEFAULT_HEADERS.iter().map(|h| (*h).to_owned()).collect()
}
fn default_encoding() -> EncodingChoice {
    EncodingChoice::Any
}

/// ServiceTitan verifier.
#[derive(Debug)]
pub(super) struct ServiceTitan {
    secrets: Vec<Secret>,
    headers: Vec<String>,
    encodings: &'static [Encoding],
}

impl ServiceTitan {
    /// Build from the app's HMAC key(s) and options.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let o: Options = super::parse_options(NAME, options)?;
        if o.headers.is_empty() {
            return Err(super::invalid(
                NAME,
                format!(
                    "`headers = []` names no header; leave it out to try {}",
                    DEFAULT_HEADERS.join(", ")
                ),
            ));
        }
        for h in &o.headers {
            check_header_name("headers", h).map_err(|m| super::invalid(NAME, m))?;
        }
        let encodings: &'static [Encoding] = match o.encoding {
            EncodingChoice::Hex => &[Encoding::Hex],
            EncodingChoice::Base64 => &[Encoding::Base64],
            EncodingChoice::Any => &[Encoding::Hex, Encoding::Base64],
        };
        Ok(ServiceTitan {
            secrets,
            headers: o.headers,
            encodings,
        })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        let mut candidates = Vec::new();
        let mut present = 0;
        for name in &self.headers {
            let Some(value) = header(req.headers, name)? else {
                trace.note(|| format!("{name}: absent"));
                continue;
            };
            present += 1;
            let digits = strip_prefix_ignore_case(value, "sha256=").unwrap_or(value);
            for encoding in self.encodings {
                match encoding.decode(digits) {
                    Some(bytes) if bytes.len() == 32 => {
                        trace.note(|| {
                            format!(
                                "{name}: `{}` read as {}",
                                shorten(value, 24),
                                encoding.label()
                            )
                        });
                        candidates.push(bytes);
                    }
                    _ => {
                        trace.note(|| format!("{name}: not a {} SHA-256 digest", encoding.label()))
                    }
                }
            }
        }
        if present == 0 {
            return Err(Rejection::MissingHeader(self.headers.join(" or ")));
        }
        if candidates.is_empty() {
            return Err(Rejection::MalformedHeader {
                name: self.headers.join(" / "),
                why: format!(
                    "no {} HMAC-SHA256 in the header(s) present",
                    self.encoding_names()
                ),
            });
        }
        let mut matched = None;
        for (i, secret) in self.secrets.iter().enumerate() {
            let expected = hmac_sha256(secret.expose(), &[req.body]);
            let hit = candidates.iter().any(|c| ct_eq(c, &expected));
            trace.note(|| {
                format!(
                    "{}: expected hex {} -> {}",
                    secret_label(i),
                    hex::encode(&expected),
                    if hit { "match" } else { "no match" }
                )
            });
            if hit && matched.is_none() {
                matched = Some(i);
            }
        }
        if matched.is_none() {
            return Err(Rejection::BadSignature(format!(
                "HMAC-SHA256 of the body matches none of {} configured key(s)",
                self.secrets.len()
            )));
        }
        Ok(Verdict::Events(vec![normalize(req.body)]))
    }

    fn encoding_names(&self) -> String {
        self.encodings
            .iter()
            .map(|e| e.label())
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// `eventType` as a kind: Scheduling Pro names mapped, `a.b` kept, anything
/// else made a lower-case slug.
fn kind_of(event_type: &str) -> String {
    let squashed: String = event_type
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match squashed.as_str() {
        "sessioncompleted" | "schedulingsessioncompleted" => {
            "scheduling.session_completed".to_owned()
        }
        "qualifiedabandonedsession"
        | "schedulingqualifiedabandonedsession"
        | "sessionabandoned" => "scheduling.session_abandoned".to_owned(),
        _ if event_type.contains('.') && !event_type.contains(' ') => event_type.to_owned(),
        _ => slug(event_type),
    }
}

fn normalize(body: &[u8]) -> Normalized {
    let Some(value) = parse_json(body) else {
        return unparsed(None);
    };
    let event_type = ["eventType", "eventName", "event", "type"]
        .iter()
        .find_map(|k| str_at(&value, k));
    let Some(event_type) = event_type else {
        return unparsed(scalar_at(&value, "eventId"));
    };
    let kind = kind_of(event_type);
    let entity_kind = match kind.split_once('.') {
        Some(("scheduling", _)) => "session".to_owned(),
        Some((first, _)) => first.to_owned(),
        None => "unknown".to_owned(),
    };
    let entity = value
        .get("data")
        .and_then(|d| scalar_at(d, "id"))
        .map(|id| EntityRef {
            kind: entity_kind,
            id,
            url: None,
        });
    let occurred_at = ["occurredAt", "occurredOn", "createdOn", "timestamp"]
        .iter()
        .find_map(|k| scalar_at(&value, k));
    Normalized {
        kind,
        entity,
        occurred_at,
        dedupe_key: scalar_at(&value, "eventId"),
        parsed: true,
    }
}

impl Vendor for ServiceTitan {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, req: &Inbound<'_>) -> Result<Verdict, Rejection> {
        self.verify(req, &mut Trace::off())
    }

    fn check_traced(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        self.verify(req, trace)
    }

    fn sign_sample(&self, body: &[u8], _now: i64) -> Option<SignedSample> {
        let secret = self.secrets.first()?;
        let header = self.headers.first()?;
        let encoding = self.encodings.first()?;
        let mac = hmac_sha256(secret.expose(), &[body]);
        Some(SignedSample::with_headers(vec![(
            header.clone(),
            encoding.encode(&mac),
        )]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{build_with, headers, one_event, req};

    // Public vector (shared/vendors.md, assumed scheme).
    const SECRET: &str = "st-hmac-key-0123456789abcdef0123456789abcdef";
    const PUBLIC_HEX: &str = "dae02121ce643550505dae60ffd1b81705693e17814a169a7314ec8ef629387f";
    const PUBLIC_B64: &str = "2uAhIc5kNVBQXa5g/9G4FwVpPheBShaacxTsjvYpOH8=";
    const PUBLIC_BODY: &str = r#"{"eventId":"8d9f3c7e-0000-4000-8000-000000000001","eventType":"job.completed","tenantId":123456789,"data":{"id":98765}}"#;

    // Signed by testdata/sign_vectors.py with Python's hmac/hashlib.
    const ST_SESSION_BODY: &str = r#"{"eventId":"evt-sp-1","eventType":"Session Completed","tenantId":42,"data":{"id":"sess_77"}}"#;
    const ST_SESSION_HEX: &str =
        r#"f12d28596c9e3d8e87df3f8b7a961d48990a326f2700c1bd4115ebe4793776e7"#;
    const ST_SESSION_B64: &str = r#"8S0oWWyePY6H3z+LepYdSJkKMm8nAMG9QRXr5Hk3duc="#;
    const ST_SESSION_HEX_PREFIXED: &str =
        r#"sha256=f12d28596c9e3d8e87df3f8b7a961d48990a326f2700c1bd4115ebe4793776e7"#;
    const ST_SESSION_B64_PREFIXED: &str = r#"sha256=8S0oWWyePY6H3z+LepYdSJkKMm8nAMG9QRXr5Hk3duc="#;
    const ST_ABANDONED_BODY: &str = r#"{"eventId":"evt-sp-2","eventType":"Qualified Abandoned Session","tenantId":42,"data":{"id":"sess_78"}}"#;
    const ST_ABANDONED_HEX: &str =
        r#"61b90b1227c78bdfbab1d4745b92253a0fcff92854b5552376d64a2f3a599eb1"#;

    fn check(options: &str, pairs: &[(&str, &str)], body: &str) -> Result<Verdict, Rejection> {
        let v = build_with(NAME, &[SECRET], options);
        let h = headers(pairs);
        v.check(&req(&h, body.as_bytes(), None, 0))
    }

    #[test]
    fn public_vector_hex_is_accepted_and_normalized() {
        let event = one_event(check(
            "",
            &[("X-ServiceTitan-Signature", PUBLIC_HEX)],
            PUBLIC_BODY,
        ));
        assert_eq!(event.kind, "job.completed");
        assert_eq!(
            event.entity,
            Some(EntityRef {
                kind: "job".into(),
                id: "98765".into(),
                url: None
            })
        );
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some("8d9f3c7e-0000-4000-8000-000000000001")
        );
    }

    #[test]
    fn public_vector_base64_is_accepted() {
        one_event(check(
            "",
            &[("X-ServiceTitan-Signature", PUBLIC_B64)],
            PUBLIC_BODY,
        ));
    }

    #[test]
    fn public_vector_with_98766_instead_of_98765_is_rejected() {
        let body = PUBLIC_BODY.replace("98765", "98766");
        for sig in [PUBLIC_HEX, PUBLIC_B64] {
            let r = check("", &[("X-ServiceTitan-Signature", sig)], &body);
            assert!(matches!(r, Err(Rejection::BadSignature(_))), "{r:?}");
        }
    }

    #[test]
    fn every_default_header_name_is_tried() {
        for name in DEFAULT_HEADERS {
            one_event(check("", &[(name, ST_SESSION_HEX)], ST_SESSION_BODY));
        }
    }

    #[test]
    fn hex_base64_and_sha256_prefixed_signatures_are_accepted_by_default() {
        for sig in [
            ST_SESSION_HEX,
            ST_SESSION_B64,
            ST_SESSION_HEX_PREFIXED,
            ST_SESSION_B64_PREFIXED,
        ] {
            one_event(check("", &[("X-ST-Signature", sig)], ST_SESSION_BODY));
        }
    }

    #[test]
    fn encoding_can_be_pinned() {
        one_event(check(
            r#"encoding = "hex""#,
            &[("X-ST-Signature", ST_SESSION_HEX)],
            ST_SESSION_BODY,
        ));
        let r = check(
            r#"encoding = "hex""#,
            &[("X-ST-Signature", ST_SESSION_B64)],
            ST_SESSION_BODY,
        );
        assert!(
            r.is_err(),
            "base64 must not verify when only hex is allowed: {r:?}"
        );
        one_event(check(
            r#"encoding = "base64""#,
            &[("X-ST-Signature", ST_SESSION_B64)],
            ST_SESSION_BODY,
        ));
    }

    #[test]
    fn header_names_can_be_configured() {
        let options = r#"headers = ["X-Custom-Sig"]"#;
        one_event(check(
            options,
            &[("X-Custom-Sig", ST_SESSION_HEX)],
            ST_SESSION_BODY,
        ));
        let r = check(
            options,
            &[("X-ST-Signature", ST_SESSION_HEX)],
            ST_SESSION_BODY,
        );
        assert_eq!(r, Err(Rejection::MissingHeader("X-Custom-Sig".into())));
    }

    #[test]
    fn a_missing_signature_names_every_header_tried() {
        let r = check("", &[], ST_SESSION_BODY);
        assert_eq!(
            r,
            Err(Rejection::MissingHeader(
                "X-ServiceTitan-Signature or ServiceTitan-Signature or X-ST-Signature".into()
            ))
        );
    }

    #[test]
    fn scheduling_pro_session_completed_is_normalized() {
        let event = one_event(check(
            "",
            &[("X-ServiceTitan-Signature", ST_SESSION_HEX)],
            ST_SESSION_BODY,
        ));
        assert_eq!(event.kind, "scheduling.session_completed");
        assert_eq!(
            event.entity.map(|e| (e.kind, e.id)),
            Some(("session".into(), "sess_77".into()))
        );
        assert_eq!(event.dedupe_key.as_deref(), Some("evt-sp-1"));
    }

    #[test]
    fn scheduling_pro_qualified_abandoned_session_is_normalized() {
        let event = one_event(check(
            "",
            &[("X-ServiceTitan-Signature", ST_ABANDONED_HEX)],
            ST_ABANDONED_BODY,
        ));
        assert_eq!(event.kind, "scheduling.session_abandoned");
        assert_eq!(event.dedupe_key.as_deref(), Some("evt-sp-2"));
    }

    #[test]
    fn a_signature_header_sent_twice_is_malformed() {
        let r = check(
            "",
            &[
                ("X-ST-Signature", ST_SESSION_HEX),
                ("X-ST-Signature", ST_SESSION_HEX),
            ],
            ST_SESSION_BODY,
        );
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn an_undecodable_signature_is_malformed() {
        let r = check("", &[("X-ST-Signature", "%%%")], ST_SESSION_BODY);
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn an_empty_header_list_is_a_config_error() {
        let table: toml::Table = toml::from_str("headers = []").expect("toml");
        let err =
            crate::build(NAME, vec![Secret::new(b"k".to_vec())], table).expect_err("empty list");
        assert!(
            err.to_string().contains("X-ServiceTitan-Signature"),
            "{err}"
        );
    }

    #[test]
    fn event_types_become_kinds() {
        assert_eq!(kind_of("job.completed"), "job.completed");
        assert_eq!(kind_of("Session Completed"), "scheduling.session_completed");
        assert_eq!(
            kind_of("QualifiedAbandonedSession"),
            "scheduling.session_abandoned"
        );
        assert_eq!(kind_of("Job Booked"), "job_booked");
    }
}
