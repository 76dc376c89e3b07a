//! Standard Webhooks (<https://www.standardwebhooks.com>; Svix and many SaaS).
//!
//! - Headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature`: space-separated `v1,<base64>` entries; the request
//!   is accepted when any `v1` entry matches; other versions are ignored.
//!   Svix's own `svix-id` / `svix-timestamp` / `svix-signature` are read when
//!   the `webhook-*` ones are absent.
//! - Signed content: `{id}.{timestamp}.{body}`, HMAC-SHA256.
//! - Key: the base64-decoded part after `whsec_`; a secret without that
//!   prefix is used as raw bytes.
//! - Timestamp tolerance: `tolerance_secs` (default 300; 0 disables).
//! - Kind: the payload's `type`; dedupe key: `webhook-id` (stable across
//!   retries). Senders disable the endpoint on 410, so fieldhook never
//!   answers it (the default status codes apply).

use serde::Deserialize;

use super::payload::{FieldMap, FieldOptions};
use super::signature::{
    check_tolerance, ct_eq, decode_base64, describe_skew, header, hmac_sha256, parse_timestamp,
    required_header, secret_label, shorten,
};
use super::{Inbound, Rejection, Secret, SignedSample, Trace, Vendor, VendorConfigError, Verdict};

const NAME: &str = "standard-webhooks";
const HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];
const SVIX_HEADERS: [&str; 3] = ["svix-id", "svix-timestamp", "svix-signature"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
    #[serde(default)]
    kind_field: Option<String>,
    #[serde(default)]
    entity_type_field: Option<String>,
    #[serde(default)]
    entity_id_field: Option<String>,
    #[serde(default)]
    entity_url_field: Option<String>,
    #[serde(default)]
    occurred_at_field: Option<String>,
}

fn default_tolerance() -> u64 {
    300
}

/// Standard Webhooks verifier.
#[derive(Debug)]
pub(super) struct StandardWebhooks {
    keys: Vec<Vec<u8>>,
    tolerance: u64,
    fields: FieldMap,
}

impl StandardWebhooks {
    /// Build from secrets (`whsec_<base64>` or raw) and options.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let o: Options = super::parse_options(NAME, options)?;
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                signing_key(s.expose())
                    .map_err(|m| super::invalid(NAME, format!("{}: {m}", secret_label(i))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fields = FieldMap::from_options(
            NAME,
            FieldOptions {
                kind_field: Some(o.kind_field.as_deref().unwrap_or("/type")),
                id_field: None,
                entity_type_field: o.entity_type_field.as_deref(),
                entity_id_field: o.entity_id_field.as_deref(),
                entity_url_field: o.entity_url_field.as_deref(),
                occurred_at_field: Some(o.occurred_at_field.as_deref().unwrap_or("/timestamp")),
            },
        )?;
        Ok(StandardWebhooks {
            keys,
            tolerance: o.tolerance_secs,
            fields,
        })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        // Svix sends the same scheme under `svix-*` names.
        let [id_name, ts_name, sig_name] = if header(req.headers, "webhook-id")?.is_none()
            && header(req.headers, "svix-id")?.is_some()
        {
            SVIX_HEADERS
        } else {
            HEADERS
        };
        let id = required_header(req.headers, id_name)?;
        let ts_text = required_header(req.headers, ts_name)?;
        let sig_header = required_header(req.headers, sig_name)?;
        trace.note(|| format!("{id_name}: `{}`", shorten(id, 80)));
        let timestamp = parse_timestamp(ts_name, ts_text)?;

        let mut candidates = Vec::new();
        for entry in sig_header.split(' ').filter(|e| !e.is_empty()) {
            match entry.split_once(',') {
                Some(("v1", sig)) => match decode_base64(sig) {
                    Some(bytes) => candidates.push(bytes),
                    None => trace.note(|| {
                        format!(
                            "{sig_name}: entry `{}` is not base64; ignored",
                            shorten(entry, 20)
                        )
                    }),
                },
                Some((version, _)) => trace.note(|| {
                    format!(
                        "{sig_name}: version `{}` is not v1; ignored",
                        shorten(version, 20)
                    )
                }),
                None => trace.note(|| {
                    format!(
                        "{sig_name}: entry `{}` has no `version,`; ignored",
                        shorten(entry, 20)
                    )
                }),
            }
        }
        if candidates.is_empty() {
            return Err(Rejection::MalformedHeader {
                name: sig_name.to_owned(),
                why: "no `v1,<base64>` entry".to_owned(),
            });
        }
        trace.note(|| {
            format!(
                "{sig_name}: {} v1 signature(s); signed content is `{{{id_name}}}.{{{ts_name}}}.{{body}}` with HMAC-SHA256",
                candidates.len()
            )
        });

        let mut matched = None;
        for (i, key) in self.keys.iter().enumerate() {
            let expected = hmac_sha256(
                key,
                &[id.as_bytes(), b".", ts_text.as_bytes(), b".", req.body],
            );
            let hit = candidates.iter().any(|c| ct_eq(c, &expected));
            trace.note(|| {
                format!(
                    "{}: expected v1,{} -> {}",
                    secret_label(i),
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &expected),
                    if hit { "match" } else { "no match" }
                )
            });
            if hit && matched.is_none() {
                matched = Some(i);
            }
        }
        if matched.is_none() {
            return Err(Rejection::BadSignature(format!(
                "no v1 entry of `{sig_name}` matches {} configured secret(s)",
                self.keys.len()
            )));
        }

        let skew = check_tolerance(timestamp, req.now, self.tolerance).inspect_err(|_| {
            trace.note(|| {
                format!(
                    "{ts_name}: {timestamp} is {}, tolerance {}s",
                    describe_skew(req.now.saturating_sub(timestamp)),
                    self.tolerance
                )
            });
        })?;
        trace.note(|| {
            format!(
                "{ts_name}: {timestamp} is {}, tolerance {}s: ok",
                describe_skew(skew),
                self.tolerance
            )
        });

        Ok(Verdict::Events(vec![
            self.fields.normalize(req.body, Some(id.to_owned())),
        ]))
    }
}

/// The HMAC key of a secret: base64 after `whsec_`, else the raw bytes.
fn signing_key(secret: &[u8]) -> Result<Vec<u8>, String> {
    match secret.strip_prefix(b"whsec_") {
        None => Ok(secret.to_vec()),
        Some(rest) => std::str::from_utf8(rest)
            .ok()
            .and_then(|text| decode_base64(text.trim()))
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                "starts with `whsec_` but the rest is not base64; copy the whole secret from the sender's dashboard".to_owned()
            }),
    }
}

impl Vendor for StandardWebhooks {
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
        let key = self.keys.first()?;
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
        let id = format!("msg_fieldhook_{now}_{}", &digest[..12]);
        let ts = now.to_string();
        let mac = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        let signature = format!(
            "v1,{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, mac)
        );
        Some(SignedSample::with_headers(vec![
            ("webhook-id".to_owned(), id),
            ("webhook-timestamp".to_owned(), ts),
            ("webhook-signature".to_owned(), signature),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{build_with, headers, one_event, req};
    use crate::{EntityRef, Failure};

    // Public vector (shared/vendors.md).
    const PUBLIC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const PUBLIC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const PUBLIC_TS: &str = "1614265330";
    const PUBLIC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const PUBLIC_BODY: &str = r#"{"test": 2432232314}"#;

    // Signed by testdata/sign_vectors.py with the `standardwebhooks` PyPI package.
    const SW_SECRET: &str = r#"whsec_ZmllbGRob29rLXN0YW5kYXJkLXdlYmhvb2tzLWtleTE="#;
    const SW_PREVIOUS_SECRET: &str = r#"whsec_ZmllbGRob29rLXN0YW5kYXJkLXdlYmhvb2tzLWtleTA="#;
    const SW_BODY: &str =
        r#"{"type":"invoice.paid","timestamp":"2023-11-14T22:13:20Z","data":{"id":"inv_1"}}"#;
    const SW_ID: &str = r#"msg_2Yh0fieldhook0multi"#;
    const SW_SIG_MULTI: &str = r#"v1,TGqbSl8hoUXpDWONDVewNyylTQs1gzsSEuVEu1LSGLw= v2,ssbTCJxRcCDnrJTzRSY2ro4uq4VvVuUtaBBOHU8zq50= v1a,bm90LWEtc2lnbmF0dXJl v1,ssbTCJxRcCDnrJTzRSY2ro4uq4VvVuUtaBBOHU8zq50="#;
    const SW_SIG_UNKNOWN_VERSION_ONLY: &str = r#"v2,ssbTCJxRcCDnrJTzRSY2ro4uq4VvVuUtaBBOHU8zq50="#;
    const SW_SIG_PREVIOUS_SECRET: &str = r#"v1,z3aXDd+oTrWSg/4YbGTLgM5mhr/KXtqjaxgkdFQmNEE="#;
    const SW_RAW_SECRET: &str = r#"a-raw-secret-without-the-whsec-prefix"#;
    const SW_SIG_RAW_SECRET: &str = r#"v1,/9Ih8d2/mNb3V1wTW6JL4vFTaiw083Ntugs6zF1+HE8="#;
    const SW_BAD_JSON_BODY: &str = r#"this is {not json"#;
    const SW_SIG_BAD_JSON: &str = r#"v1,UImiKrXkDvCL/9pz3aymVlRvVXAnyfko+mCSs7h7hNI="#;
    const SW_TS: i64 = 1700000000;

    fn vendor(secrets: &[&str], options: &str) -> Box<dyn Vendor> {
        build_with(NAME, secrets, options)
    }

    fn signed(id: &str, ts: &str, sig: &str) -> http::HeaderMap {
        headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ])
    }

    fn sw_headers(sig: &str) -> http::HeaderMap {
        signed(SW_ID, &SW_TS.to_string(), sig)
    }

    #[test]
    fn public_vector_is_accepted() {
        let v = vendor(&[PUBLIC_SECRET], "");
        let h = signed(PUBLIC_ID, PUBLIC_TS, PUBLIC_SIG);
        let event = one_event(v.check(&req(&h, PUBLIC_BODY.as_bytes(), None, 1614265330)));
        assert_eq!(event.dedupe_key.as_deref(), Some(PUBLIC_ID));
        assert_eq!(
            event.kind, "unknown",
            "the public vector's body has no `type`"
        );
        assert!(event.parsed);
    }

    #[test]
    fn public_vector_with_one_changed_body_byte_is_rejected() {
        let v = vendor(&[PUBLIC_SECRET], "");
        let h = signed(PUBLIC_ID, PUBLIC_TS, PUBLIC_SIG);
        let r = v.check(&req(&h, br#"{"test": 2432232315}"#, None, 1614265330));
        assert!(matches!(r, Err(Rejection::BadSignature(_))), "{r:?}");
    }

    #[test]
    fn public_vector_with_another_id_or_timestamp_is_rejected() {
        let v = vendor(&[PUBLIC_SECRET], "tolerance_secs = 0");
        let h = signed("msg_other", PUBLIC_TS, PUBLIC_SIG);
        assert!(matches!(
            v.check(&req(&h, PUBLIC_BODY.as_bytes(), None, 0)),
            Err(Rejection::BadSignature(_))
        ));
        let h = signed(PUBLIC_ID, "1614265331", PUBLIC_SIG);
        assert!(matches!(
            v.check(&req(&h, PUBLIC_BODY.as_bytes(), None, 0)),
            Err(Rejection::BadSignature(_))
        ));
    }

    #[test]
    fn one_valid_v1_among_wrong_and_unknown_version_signatures_is_accepted() {
        let v = vendor(&[SW_SECRET], "");
        let event = one_event(v.check(&req(
            &sw_headers(SW_SIG_MULTI),
            SW_BODY.as_bytes(),
            None,
            SW_TS,
        )));
        assert_eq!(event.kind, "invoice.paid");
        assert_eq!(event.occurred_at.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(event.dedupe_key.as_deref(), Some(SW_ID));
    }

    #[test]
    fn a_matching_mac_under_an_unknown_version_is_ignored() {
        let v = vendor(&[SW_SECRET], "");
        let r = v.check(&req(
            &sw_headers(SW_SIG_UNKNOWN_VERSION_ONLY),
            SW_BODY.as_bytes(),
            None,
            SW_TS,
        ));
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn during_rotation_a_signature_by_the_previous_secret_is_accepted() {
        let v = vendor(&[SW_SECRET, SW_PREVIOUS_SECRET], "");
        one_event(v.check(&req(
            &sw_headers(SW_SIG_PREVIOUS_SECRET),
            SW_BODY.as_bytes(),
            None,
            SW_TS,
        )));
        let only_new = vendor(&[SW_SECRET], "");
        let r = only_new.check(&req(
            &sw_headers(SW_SIG_PREVIOUS_SECRET),
            SW_BODY.as_bytes(),
            None,
            SW_TS,
        ));
        assert!(matches!(r, Err(Rejection::BadSignature(_))));
    }

    #[test]
    fn a_secret_without_whsec_prefix_is_used_as_raw_bytes() {
        let v = vendor(&[SW_RAW_SECRET], "");
        one_event(v.check(&req(
            &sw_headers(SW_SIG_RAW_SECRET),
            SW_BODY.as_bytes(),
            None,
            SW_TS,
        )));
    }

    #[test]
    fn a_whsec_secret_that_is_not_base64_is_a_config_error() {
        let err = crate::build(
            NAME,
            vec![Secret::new(b"whsec_!!!".to_vec())],
            toml::Table::new(),
        )
        .expect_err("bad secret");
        assert!(err.to_string().contains("whsec_"), "{err}");
    }

    #[test]
    fn timestamps_older_or_newer_than_five_minutes_are_rejected_by_default() {
        let v = vendor(&[SW_SECRET], "");
        let h = sw_headers(SW_SIG_MULTI);
        let body = SW_BODY.as_bytes();
        one_event(v.check(&req(&h, body, None, SW_TS + 300)));
        one_event(v.check(&req(&h, body, None, SW_TS - 300)));
        assert_eq!(
            v.check(&req(&h, body, None, SW_TS + 301)),
            Err(Rejection::StaleTimestamp {
                timestamp: SW_TS,
                skew: 301,
                tolerance: 300
            })
        );
        assert_eq!(
            v.check(&req(&h, body, None, SW_TS - 301)),
            Err(Rejection::StaleTimestamp {
                timestamp: SW_TS,
                skew: -301,
                tolerance: 300
            })
        );
    }

    #[test]
    fn tolerance_is_configurable_and_zero_disables_it() {
        let h = sw_headers(SW_SIG_MULTI);
        let body = SW_BODY.as_bytes();
        let tight = vendor(&[SW_SECRET], "tolerance_secs = 10");
        assert!(matches!(
            tight.check(&req(&h, body, None, SW_TS + 11)),
            Err(Rejection::StaleTimestamp { .. })
        ));
        let off = vendor(&[SW_SECRET], "tolerance_secs = 0");
        one_event(off.check(&req(&h, body, None, SW_TS + 10_000_000)));
    }

    #[test]
    fn malformed_json_from_a_verified_sender_is_stored_unparsed_with_its_id() {
        let v = vendor(&[SW_SECRET], "");
        let event = one_event(v.check(&req(
            &sw_headers(SW_SIG_BAD_JSON),
            SW_BAD_JSON_BODY.as_bytes(),
            None,
            SW_TS,
        )));
        assert!(!event.parsed);
        assert_eq!(event.kind, "unknown");
        assert_eq!(event.dedupe_key.as_deref(), Some(SW_ID));
    }

    #[test]
    fn each_missing_header_is_named() {
        let v = vendor(&[SW_SECRET], "");
        let ts = SW_TS.to_string();
        for (missing, h) in [
            (
                "webhook-id",
                headers(&[
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", SW_SIG_MULTI),
                ]),
            ),
            (
                "webhook-timestamp",
                headers(&[("webhook-id", SW_ID), ("webhook-signature", SW_SIG_MULTI)]),
            ),
            (
                "webhook-signature",
                headers(&[("webhook-id", SW_ID), ("webhook-timestamp", &ts)]),
            ),
        ] {
            assert_eq!(
                v.check(&req(&h, SW_BODY.as_bytes(), None, SW_TS)),
                Err(Rejection::MissingHeader(missing.into()))
            );
        }
    }

    #[test]
    fn a_signature_header_sent_twice_is_malformed() {
        let v = vendor(&[SW_SECRET], "");
        let mut h = sw_headers(SW_SIG_MULTI);
        h.append(
            "webhook-signature",
            http::HeaderValue::from_static("v1,AAAA"),
        );
        assert!(matches!(
            v.check(&req(&h, SW_BODY.as_bytes(), None, SW_TS)),
            Err(Rejection::MalformedHeader { name, .. }) if name == "webhook-signature"
        ));
    }

    #[test]
    fn svix_prefixed_headers_are_accepted_too() {
        let v = vendor(&[SW_SECRET], "");
        let h = headers(&[
            ("svix-id", SW_ID),
            ("svix-timestamp", "1700000000"),
            ("svix-signature", SW_SIG_MULTI),
        ]);
        one_event(v.check(&req(&h, SW_BODY.as_bytes(), None, SW_TS)));
    }

    #[test]
    fn entity_fields_can_be_mapped_with_json_pointers() {
        let v = vendor(&[SW_SECRET], r#"entity_id_field = "/data/id""#);
        let event = one_event(v.check(&req(
            &sw_headers(SW_SIG_MULTI),
            SW_BODY.as_bytes(),
            None,
            SW_TS,
        )));
        assert_eq!(
            event.entity,
            Some(EntityRef {
                kind: "invoice".into(),
                id: "inv_1".into(),
                url: None
            })
        );
    }

    #[test]
    fn never_answers_410() {
        let v = vendor(&[SW_SECRET], "");
        for f in [
            Failure::Rejected,
            Failure::TooLarge,
            Failure::StoreUnavailable,
        ] {
            assert_ne!(v.status_for(f), 410);
        }
    }

    #[test]
    fn explain_lists_ignored_versions_and_the_skew() {
        let report = crate::explain(
            NAME,
            vec![Secret::new(SW_SECRET.as_bytes().to_vec())],
            toml::Table::new(),
            &sw_headers(SW_SIG_MULTI),
            SW_BODY.as_bytes(),
            None,
            SW_TS + 400,
        );
        let text = report.to_string();
        assert!(!report.accepted);
        assert!(text.contains("version `v2` is not v1"), "{text}");
        assert!(text.contains("400s old"), "{text}");
        assert!(text.contains("-> match"), "{text}");
    }
}
