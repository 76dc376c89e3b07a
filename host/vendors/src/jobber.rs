//! Jobber.
//!
//! - `X-Jobber-Hmac-SHA256` = base64 HMAC-SHA256 over the raw body, keyed by
//!   the app's OAuth client secret. No timestamp.
//! - Thin body `{"data":{"webHookEvent":{"topic":"JOB_UPDATE","appId",
//!   "accountId","itemId","occurredAt"}}}`: kind from the topic
//!   (`JOB_UPDATE` -> `job.updated`), entity from `itemId` (fetch it over
//!   GraphQL), dedupe accountId + topic + itemId + occurredAt.
//! - Jobber waits 1 s for the answer; the default status codes apply.

use serde::Deserialize;

use super::payload::{composite_key, parse_json, str_at, unparsed};
use super::signature::{ct_eq, decode_base64, hmac_sha256, required_header, secret_label};
use super::{
    EntityRef, Inbound, Normalized, Rejection, Secret, SignedSample, Trace, Vendor,
    VendorConfigError, Verdict,
};

const NAME: &str = "jobber";
const SIGNATURE: &str = "X-Jobber-Hmac-SHA256";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// Jobber verifier.
#[derive(Debug)]
pub(super) struct Jobber {
    secrets: Vec<Secret>,
}

impl Jobber {
    /// Build from the OAuth client secret(s); Jobber has no options.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let Options {} = super::parse_options(NAME, options)?;
        Ok(Jobber { secrets })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        let signature = required_header(req.headers, SIGNATURE)?;
        let Some(given) = decode_base64(signature) else {
            return Err(Rejection::MalformedHeader {
                name: SIGNATURE.to_owned(),
                why: "not base64".to_owned(),
            });
        };
        trace.note(|| {
            format!(
                "{SIGNATURE}: base64, {} bytes; HMAC-SHA256 over the raw body",
                given.len()
            )
        });
        let mut matched = None;
        for (i, secret) in self.secrets.iter().enumerate() {
            let expected = hmac_sha256(secret.expose(), &[req.body]);
            let hit = ct_eq(&given, &expected);
            trace.note(|| {
                format!(
                    "{}: expected {} -> {}",
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
                "{SIGNATURE} matches none of {} configured secret(s) (the key is the app's OAuth client secret)",
                self.secrets.len()
            )));
        }
        Ok(Verdict::Events(vec![normalize(req.body)]))
    }
}

/// `JOB_UPDATE` -> `("job", "job.updated")`; `VISIT_COMPLETE` ->
/// `("visit", "visit.completed")`; `APP_DISCONNECT` -> `("app", "app.disconnected")`.
fn topic_kind(topic: &str) -> (String, String) {
    let (entity, verb) = match topic.rsplit_once('_') {
        Some((entity, verb)) if !entity.is_empty() && !verb.is_empty() => (entity, verb),
        _ => return (topic.to_ascii_lowercase(), topic.to_ascii_lowercase()),
    };
    let entity = entity.to_ascii_lowercase();
    let verb = verb.to_ascii_lowercase();
    let past = if verb.ends_with("ed") || matches!(verb.as_str(), "sent" | "paid" | "won" | "lost")
    {
        verb
    } else if verb.ends_with('e') {
        format!("{verb}d")
    } else {
        format!("{verb}ed")
    };
    let kind = format!("{entity}.{past}");
    (entity, kind)
}

fn normalize(body: &[u8]) -> Normalized {
    let Some(value) = parse_json(body) else {
        return unparsed(None);
    };
    let Some(event) = value.pointer("/data/webHookEvent") else {
        return unparsed(None);
    };
    let Some(topic) = str_at(event, "topic") else {
        return unparsed(None);
    };
    let (entity_kind, kind) = topic_kind(topic);
    let item = str_at(event, "itemId");
    let account = str_at(event, "accountId");
    let occurred = str_at(event, "occurredAt");
    Normalized {
        kind,
        entity: item.map(|id| EntityRef {
            kind: entity_kind,
            id: id.to_owned(),
            url: None,
        }),
        occurred_at: occurred.map(str::to_owned),
        dedupe_key: match (account, item, occurred) {
            (Some(account), Some(item), Some(occurred)) => {
                Some(composite_key(&[account, topic, item, occurred]))
            }
            _ => None,
        },
        parsed: true,
    }
}

impl Vendor for Jobber {
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
        let mac = hmac_sha256(secret.expose(), &[body]);
        let signature = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, mac);
        Some(SignedSample::with_headers(vec![(
            SIGNATURE.to_owned(),
            signature,
        )]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{build_with, headers, one_event, req};
    use hmac::Mac as _;
    use proptest::prelude::*;

    // Public vector (shared/vendors.md).
    const SECRET: &str = "jobber_oauth_client_secret_EXAMPLE";
    const PUBLIC_SIG: &str = "ZUrPt1oelKKAcEnrKej5+lntn+gVUhdX7ehfHKseCxQ=";
    const PUBLIC_BODY: &str = r#"{"data":{"webHookEvent":{"topic":"CLIENT_CREATE","appId":"3ef22a50-072d-430c-a78f-b7646657560b","accountId":"MQ==","itemId":"MQ==","occurredAt":"2021-08-12T16:31:36-06:00"}}}"#;

    // Signed by testdata/sign_vectors.py with Python's hmac/hashlib.
    const J_PREVIOUS_SECRET: &str = r#"jobber_previous_client_secret"#;
    const J_JOB_UPDATE_BODY: &str = r#"{"data":{"webHookEvent":{"topic":"JOB_UPDATE","appId":"app-1","accountId":"QWNjb3VudDox","itemId":"Sm9iOjQy","occurredAt":"2023-11-14T22:13:20Z"}}}"#;
    const J_JOB_UPDATE_SIG_PREVIOUS: &str = r#"0ms1JEr4NhoQ2Gst0BoubHep1ipmP/gVwz6utiYBcrA="#;
    const J_JOB_UPDATE_SIG_CURRENT: &str = r#"C/k34j5ITtv4FCQqRHBxGOTmbW6NifMgAYYsca0OV5s="#;

    fn check(secrets: &[&str], sig: Option<&str>, body: &[u8]) -> Result<Verdict, Rejection> {
        let v = build_with(NAME, secrets, "");
        let h = match sig {
            Some(sig) => headers(&[(SIGNATURE, sig)]),
            None => headers(&[]),
        };
        v.check(&req(&h, body, None, 0))
    }

    #[test]
    fn public_vector_is_accepted_and_normalized() {
        let event = one_event(check(&[SECRET], Some(PUBLIC_SIG), PUBLIC_BODY.as_bytes()));
        assert_eq!(event.kind, "client.created");
        assert_eq!(
            event.entity,
            Some(EntityRef {
                kind: "client".into(),
                id: "MQ==".into(),
                url: None
            })
        );
        assert_eq!(
            event.occurred_at.as_deref(),
            Some("2021-08-12T16:31:36-06:00")
        );
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some("MQ==|CLIENT_CREATE|MQ==|2021-08-12T16:31:36-06:00")
        );
    }

    #[test]
    fn public_vector_with_client_update_instead_of_client_create_is_rejected() {
        let body = PUBLIC_BODY.replace("CLIENT_CREATE", "CLIENT_UPDATE");
        let r = check(&[SECRET], Some(PUBLIC_SIG), body.as_bytes());
        assert!(matches!(r, Err(Rejection::BadSignature(_))), "{r:?}");
    }

    #[test]
    fn job_update_becomes_job_updated() {
        let event = one_event(check(
            &[SECRET],
            Some(J_JOB_UPDATE_SIG_CURRENT),
            J_JOB_UPDATE_BODY.as_bytes(),
        ));
        assert_eq!(event.kind, "job.updated");
        assert_eq!(
            event.entity.map(|e| (e.kind, e.id)),
            Some(("job".into(), "Sm9iOjQy".into()))
        );
    }

    #[test]
    fn during_rotation_the_previous_client_secret_verifies() {
        one_event(check(
            &[SECRET, J_PREVIOUS_SECRET],
            Some(J_JOB_UPDATE_SIG_PREVIOUS),
            J_JOB_UPDATE_BODY.as_bytes(),
        ));
        let r = check(
            &[SECRET],
            Some(J_JOB_UPDATE_SIG_PREVIOUS),
            J_JOB_UPDATE_BODY.as_bytes(),
        );
        assert!(matches!(r, Err(Rejection::BadSignature(_))));
    }

    #[test]
    fn a_missing_signature_header_is_named() {
        assert_eq!(
            check(&[SECRET], None, PUBLIC_BODY.as_bytes()),
            Err(Rejection::MissingHeader(SIGNATURE.into()))
        );
    }

    #[test]
    fn a_signature_header_sent_twice_is_malformed() {
        let v = build_with(NAME, &[SECRET], "");
        let h = headers(&[(SIGNATURE, PUBLIC_SIG), (SIGNATURE, PUBLIC_SIG)]);
        let r = v.check(&req(&h, PUBLIC_BODY.as_bytes(), None, 0));
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }

    #[test]
    fn topics_map_to_past_tense_kinds() {
        for (topic, kind) in [
            ("CLIENT_CREATE", "client.created"),
            ("JOB_UPDATE", "job.updated"),
            ("JOB_DESTROY", "job.destroyed"),
            ("VISIT_COMPLETE", "visit.completed"),
            ("QUOTE_SENT", "quote.sent"),
            ("QUOTE_APPROVED", "quote.approved"),
            ("APP_DISCONNECT", "app.disconnected"),
            ("PAYMENT_RECORD_CREATE", "payment_record.created"),
        ] {
            assert_eq!(topic_kind(topic).1, kind, "{topic}");
        }
    }

    #[test]
    fn a_body_without_web_hook_event_is_stored_unparsed() {
        let n = normalize(br#"{"data":{}}"#);
        assert!(!n.parsed);
        assert_eq!(n.kind, "unknown");
    }

    proptest! {
        /// Any body signed with the secret is accepted (signed here with the
        /// `hmac` crate directly, not with the verifier), and never panics
        /// normalization, JSON or not.
        #[test]
        fn any_correctly_signed_body_is_accepted(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
            mac.update(&body);
            let sig = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, mac.finalize().into_bytes());
            let result = check(&[SECRET], Some(&sig), &body);
            prop_assert!(matches!(result, Ok(Verdict::Events(ref e)) if e.len() == 1), "{:?}", result);
        }
    }
}
