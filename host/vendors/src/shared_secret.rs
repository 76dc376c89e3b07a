//! Shared-secret senders: HTTP Basic auth and an API key in a header.
//!
//! For senders that cannot sign (Zuper's custom headers, form tools,
//! in-house scripts). Weaker than a signature: the secret travels with every
//! request, so use HTTPS. Both compare in constant time against every
//! configured secret (current and previous during a rotation), and never
//! print the presented credential.
//!
//! - `basic-auth`: `Authorization: Basic base64(user:password)`; the secret
//!   is `user:password`.
//! - `api-key`: the key in `header` (default `X-API-Key`), optionally after a
//!   `scheme` (`Authorization: Bearer <key>`).
//!
//! Kind, entity and dedupe key come from JSON pointers (`kind_field`, ...),
//! as for the generic HMAC vendor.

use serde::Deserialize;

use super::generic_hmac::{check_header_name, strip_prefix_ignore_case};
use super::payload::{FieldMap, FieldOptions};
use super::signature::{decode_base64, matching_secret, required_header, secret_label};
use super::{Inbound, Rejection, Secret, SignedSample, Trace, Vendor, VendorConfigError, Verdict};

const BASIC: &str = "basic-auth";
const API_KEY: &str = "api-key";
const AUTHORIZATION: &str = "Authorization";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicOptions {
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

/// HTTP Basic auth verifier.
#[derive(Debug)]
pub(super) struct BasicAuth {
    secrets: Vec<Secret>,
    fields: FieldMap,
}

impl BasicAuth {
    /// Build from `user:password` secret(s) and options.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let o: BasicOptions = super::parse_options(BASIC, options)?;
        if let Some(i) = secrets.iter().position(|s| !s.expose().contains(&b':')) {
            return Err(super::invalid(
                BASIC,
                format!(
                    "{} must be `user:password` (it has no `:`)",
                    secret_label(i)
                ),
            ));
        }
        let fields = FieldMap::from_options(
            BASIC,
            FieldOptions {
                kind_field: o.kind_field.as_deref(),
                id_field: o.id_field.as_deref(),
                entity_type_field: o.entity_type_field.as_deref(),
                entity_id_field: o.entity_id_field.as_deref(),
                entity_url_field: o.entity_url_field.as_deref(),
                occurred_at_field: o.occurred_at_field.as_deref(),
            },
        )?;
        Ok(BasicAuth { secrets, fields })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        let value = required_header(req.headers, AUTHORIZATION)?;
        let Some(encoded) = strip_prefix_ignore_case(value, "Basic ") else {
            return Err(Rejection::MalformedHeader {
                name: AUTHORIZATION.to_owned(),
                why: "expected `Basic <base64 of user:password>`".to_owned(),
            });
        };
        let Some(credentials) = decode_base64(encoded.trim()) else {
            return Err(Rejection::MalformedHeader {
                name: AUTHORIZATION.to_owned(),
                why: "the Basic credentials are not base64".to_owned(),
            });
        };
        match matching_secret(&credentials, &self.secrets) {
            Some(i) => trace.note(|| format!("Basic credentials match {}", secret_label(i))),
            None => {
                let user = credentials.split(|b| *b == b':').next().unwrap_or_default();
                let known_user = self
                    .secrets
                    .iter()
                    .any(|s| s.expose().split(|b| *b == b':').next() == Some(user));
                trace.note(|| {
                    format!(
                        "Basic credentials for user `{}` match none of {} secret(s){}",
                        String::from_utf8_lossy(user),
                        self.secrets.len(),
                        if known_user {
                            " (the user is known: the password differs)"
                        } else {
                            ""
                        }
                    )
                });
                return Err(Rejection::BadCredentials(
                    "user or password does not match".to_owned(),
                ));
            }
        }
        Ok(Verdict::Events(vec![self.fields.normalize(req.body, None)]))
    }
}

impl Vendor for BasicAuth {
    fn name(&self) -> &'static str {
        BASIC
    }

    fn check(&self, req: &Inbound<'_>) -> Result<Verdict, Rejection> {
        self.verify(req, &mut Trace::off())
    }

    fn check_traced(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        self.verify(req, trace)
    }

    fn sign_sample(&self, _body: &[u8], _now: i64) -> Option<SignedSample> {
        let credentials = &self.secrets.first()?.expose();
        let encoded =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, credentials);
        Some(SignedSample::with_headers(vec![(
            AUTHORIZATION.to_owned(),
            format!("Basic {encoded}"),
        )]))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyOptions {
    #[serde(default = "default_header")]
    header: String,
    #[serde(default)]
    scheme: Option<String>,
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

fn default_header() -> String {
    "X-API-Key".to_owned()
}

/// API-key header verifier.
#[derive(Debug)]
pub(super) struct ApiKey {
    secrets: Vec<Secret>,
    header: String,
    scheme: Option<String>,
    fields: FieldMap,
}

impl ApiKey {
    /// Build from the key(s) and options.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let o: ApiKeyOptions = super::parse_options(API_KEY, options)?;
        check_header_name("header", &o.header).map_err(|m| super::invalid(API_KEY, m))?;
        let scheme = o
            .scheme
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if let Some(s) = &scheme
            && s.contains(char::is_whitespace)
        {
            return Err(super::invalid(
                API_KEY,
                format!("`scheme = \"{s}\"` must be one word, e.g. \"Bearer\""),
            ));
        }
        let fields = FieldMap::from_options(
            API_KEY,
            FieldOptions {
                kind_field: o.kind_field.as_deref(),
                id_field: o.id_field.as_deref(),
                entity_type_field: o.entity_type_field.as_deref(),
                entity_id_field: o.entity_id_field.as_deref(),
                entity_url_field: o.entity_url_field.as_deref(),
                occurred_at_field: o.occurred_at_field.as_deref(),
            },
        )?;
        Ok(ApiKey {
            secrets,
            header: o.header,
            scheme,
            fields,
        })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        let value = required_header(req.headers, &self.header)?;
        let key = match &self.scheme {
            None => value,
            Some(scheme) => {
                let key = strip_prefix_ignore_case(value, scheme)
                    .filter(|rest| rest.starts_with(' '))
                    .map(str::trim);
                match key {
                    Some(key) => key,
                    None => {
                        return Err(Rejection::MalformedHeader {
                            name: self.header.clone(),
                            why: format!("expected `{scheme} <key>`"),
                        });
                    }
                }
            }
        };
        match matching_secret(key.as_bytes(), &self.secrets) {
            Some(i) => trace.note(|| format!("{}: key matches {}", self.header, secret_label(i))),
            None => {
                trace.note(|| {
                    format!(
                        "{}: key ({} chars) matches none of {} secret(s)",
                        self.header,
                        key.len(),
                        self.secrets.len()
                    )
                });
                return Err(Rejection::BadCredentials(format!(
                    "the key in `{}` does not match",
                    self.header
                )));
            }
        }
        Ok(Verdict::Events(vec![self.fields.normalize(req.body, None)]))
    }
}

impl Vendor for ApiKey {
    fn name(&self) -> &'static str {
        API_KEY
    }

    fn check(&self, req: &Inbound<'_>) -> Result<Verdict, Rejection> {
        self.verify(req, &mut Trace::off())
    }

    fn check_traced(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        self.verify(req, trace)
    }

    fn sign_sample(&self, _body: &[u8], _now: i64) -> Option<SignedSample> {
        let key = std::str::from_utf8(self.secrets.first()?.expose()).ok()?;
        let value = match &self.scheme {
            Some(scheme) => format!("{scheme} {key}"),
            None => key.to_owned(),
        };
        Some(SignedSample::with_headers(vec![(
            self.header.clone(),
            value,
        )]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{build_with, headers, one_event, req};
    use crate::{build, explain};

    // Encoded by testdata/sign_vectors.py with Python's base64.
    const BASIC_HEADER: &str = r#"Basic ZmllbGRob29rOnMzY3IzdDp3aXRoOmNvbG9ucw=="#;
    const BASIC_HEADER_WRONG_PASSWORD: &str = r#"Basic ZmllbGRob29rOm5vcGU="#;
    const BASIC_SECRET: &str = "fieldhook:s3cr3t:with:colons";

    const BODY: &str = r#"{"event":"job.updated","job":{"uid":"Z-1"}}"#;

    fn basic(secrets: &[&str], pairs: &[(&str, &str)]) -> Result<Verdict, Rejection> {
        let v = build_with(BASIC, secrets, "");
        let h = headers(pairs);
        v.check(&req(&h, BODY.as_bytes(), None, 0))
    }

    fn api_key(options: &str, pairs: &[(&str, &str)]) -> Result<Verdict, Rejection> {
        let v = build_with(API_KEY, &["key-current", "key-previous"], options);
        let h = headers(pairs);
        v.check(&req(&h, BODY.as_bytes(), None, 0))
    }

    #[test]
    fn basic_auth_accepts_the_configured_user_and_password() {
        let event = one_event(basic(&[BASIC_SECRET], &[("Authorization", BASIC_HEADER)]));
        assert_eq!(event.kind, "job.updated");
    }

    #[test]
    fn basic_auth_rejects_a_wrong_password_without_saying_which_part_was_wrong() {
        let r = basic(
            &[BASIC_SECRET],
            &[("Authorization", BASIC_HEADER_WRONG_PASSWORD)],
        );
        assert_eq!(
            r,
            Err(Rejection::BadCredentials(
                "user or password does not match".into()
            ))
        );
    }

    #[test]
    fn basic_auth_accepts_the_previous_credentials_during_rotation() {
        one_event(basic(
            &["fieldhook:new", BASIC_SECRET],
            &[("Authorization", BASIC_HEADER)],
        ));
    }

    #[test]
    fn basic_auth_names_a_missing_header_and_refuses_other_schemes() {
        assert_eq!(
            basic(&[BASIC_SECRET], &[]),
            Err(Rejection::MissingHeader("Authorization".into()))
        );
        let r = basic(&[BASIC_SECRET], &[("Authorization", "Bearer abc")]);
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
        let r = basic(&[BASIC_SECRET], &[("Authorization", "Basic %%%")]);
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn basic_auth_secret_must_be_user_colon_password() {
        let err = build(
            BASIC,
            vec![Secret::new(b"nocolon".to_vec())],
            toml::Table::new(),
        )
        .expect_err("no colon");
        assert!(err.to_string().contains("user:password"), "{err}");
    }

    #[test]
    fn basic_auth_explain_never_prints_the_presented_password() {
        let h = headers(&[("Authorization", BASIC_HEADER_WRONG_PASSWORD)]);
        let report = explain(
            BASIC,
            vec![Secret::new(BASIC_SECRET.as_bytes().to_vec())],
            toml::Table::new(),
            &h,
            b"{}",
            None,
            0,
        );
        let text = report.to_string();
        assert!(text.contains("password differs"), "{text}");
        assert!(!text.contains("nope"), "{text}");
    }

    #[test]
    fn api_key_is_read_from_x_api_key_by_default() {
        one_event(api_key("", &[("X-API-Key", "key-current")]));
        one_event(api_key("", &[("x-api-key", "key-previous")]));
        assert_eq!(
            api_key("", &[("X-API-Key", "key-wrong")]),
            Err(Rejection::BadCredentials(
                "the key in `X-API-Key` does not match".into()
            ))
        );
        assert_eq!(
            api_key("", &[]),
            Err(Rejection::MissingHeader("X-API-Key".into()))
        );
    }

    #[test]
    fn api_key_header_and_scheme_are_configurable() {
        let options = r#"header = "Authorization"
scheme = "Bearer""#;
        one_event(api_key(options, &[("Authorization", "Bearer key-current")]));
        one_event(api_key(options, &[("Authorization", "bearer key-current")]));
        let r = api_key(options, &[("Authorization", "key-current")]);
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
        let r = api_key(options, &[("Authorization", "Bearerkey-current")]);
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn api_key_sent_twice_is_malformed() {
        let r = api_key(
            "",
            &[("X-API-Key", "key-current"), ("X-API-Key", "key-current")],
        );
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn shared_secret_sources_map_entity_and_dedupe_with_json_pointers() {
        let options = r#"id_field = "/job/uid"
entity_id_field = "/job/uid""#;
        let event = one_event(api_key(options, &[("X-API-Key", "key-current")]));
        assert_eq!(event.dedupe_key.as_deref(), Some("Z-1"));
        assert_eq!(
            event.entity.map(|e| (e.kind, e.id)),
            Some(("job".into(), "Z-1".into()))
        );
    }
}
