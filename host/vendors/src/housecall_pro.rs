//! Housecall Pro.
//!
//! - `Api-Signature` = lowercase hex HMAC-SHA256(secret, `{Api-Timestamp}.{body}`);
//!   `Api-Timestamp` is Unix seconds; tolerance `tolerance_secs` (default 300).
//! - URL check: when a URL is saved, Housecall Pro POSTs an unsigned
//!   `{"foo":"bar"}`. A request with neither signature header whose body has
//!   no top-level `event` key is that check: answered 200, not stored. A
//!   body with an `event` key must be signed.
//! - Envelopes: `{"event":"job.completed","event_occurred_at":..,"company_id":..,"job":{..}}`
//!   (record under the event's first part), or `{id, event, created_at, data}`.
//! - Dedupe: the envelope `id` when given, else
//!   company_id + event + event_occurred_at + record id.

use serde::Deserialize;
use serde_json::Value;

use super::payload::{composite_key, parse_json, scalar_at, str_at, unparsed};
use super::signature::{
    check_tolerance, ct_eq, describe_skew, header, hmac_sha256, parse_timestamp, required_header,
    secret_label,
};
use super::{
    EntityRef, Inbound, Normalized, Rejection, Secret, SignedSample, Trace, Vendor,
    VendorConfigError, Verdict,
};

const NAME: &str = "housecall-pro";
const SIGNATURE: &str = "Api-Signature";
const TIMESTAMP: &str = "Api-Timestamp";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    300
}

/// Housecall Pro verifier.
#[derive(Debug)]
pub(super) struct HousecallPro {
    secrets: Vec<Secret>,
    tolerance: u64,
}

impl HousecallPro {
    /// Build from the webhook signing secret(s) and options.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let o: Options = super::parse_options(NAME, options)?;
        Ok(HousecallPro {
            secrets,
            tolerance: o.tolerance_secs,
        })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        let signature = header(req.headers, SIGNATURE)?;
        let timestamp = header(req.headers, TIMESTAMP)?;
        if signature.is_none() && timestamp.is_none() {
            let has_event = parse_json(req.body).is_some_and(|v| v.get("event").is_some());
            if !has_event {
                trace.note(|| "no signature headers and no `event` key: the URL check Housecall Pro sends when a webhook URL is saved".to_owned());
                return Ok(Verdict::Handshake {
                    status: 200,
                    content_type: "text/plain; charset=utf-8",
                    body: b"OK".to_vec(),
                });
            }
            trace.note(|| "the body has an `event` key, so it must be signed".to_owned());
        }
        let signature = required_header(req.headers, SIGNATURE)?;
        let ts_text = required_header(req.headers, TIMESTAMP)?;
        let ts = parse_timestamp(TIMESTAMP, ts_text)?;
        let Some(given) = hex::decode(signature).ok() else {
            return Err(Rejection::MalformedHeader {
                name: SIGNATURE.to_owned(),
                why: "not hex".to_owned(),
            });
        };
        trace.note(|| format!("{SIGNATURE}: hex, {} bytes; signed bytes `{{{TIMESTAMP}}}.{{body}}` with HMAC-SHA256", given.len()));

        let mut matched = None;
        for (i, secret) in self.secrets.iter().enumerate() {
            let expected = hmac_sha256(secret.expose(), &[ts_text.as_bytes(), b".", req.body]);
            let hit = ct_eq(&given, &expected);
            trace.note(|| {
                format!(
                    "{}: expected {} -> {}",
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
                "{SIGNATURE} matches none of {} configured secret(s)",
                self.secrets.len()
            )));
        }
        let result = check_tolerance(ts, req.now, self.tolerance);
        trace.note(|| {
            format!(
                "{TIMESTAMP}: {ts} is {}, tolerance {}s{}",
                describe_skew(req.now.saturating_sub(ts)),
                self.tolerance,
                if result.is_ok() { ": ok" } else { "" }
            )
        });
        result?;
        Ok(Verdict::Events(vec![normalize(req.body)]))
    }
}

/// Kind, record and dedupe key of a Housecall Pro envelope.
fn normalize(body: &[u8]) -> Normalized {
    let Some(value) = parse_json(body) else {
        return unparsed(None);
    };
    let Some(event) = str_at(&value, "event") else {
        return unparsed(None);
    };
    let record_type = event.split('.').next().unwrap_or(event);
    // `{id, event, created_at, data}`, or the record under the event's first part.
    let (record, envelope_id) = match value.get("data").filter(|d| d.is_object()) {
        Some(data) => (Some(data), scalar_at(&value, "id")),
        None => (value.get(record_type).filter(|r| r.is_object()), None),
    };
    let record_id = record.and_then(|r: &Value| scalar_at(r, "id"));
    let occurred_at = str_at(&value, "event_occurred_at")
        .or_else(|| str_at(&value, "created_at"))
        .map(str::to_owned);
    let dedupe_key = envelope_id.or_else(|| {
        let company = scalar_at(&value, "company_id")?;
        Some(composite_key(&[
            company.as_str(),
            event,
            occurred_at.as_deref()?,
            record_id.as_deref()?,
        ]))
    });
    Normalized {
        kind: event.to_owned(),
        entity: record_id.map(|id| EntityRef {
            kind: record_type.to_owned(),
            id,
            url: None,
        }),
        occurred_at,
        dedupe_key,
        parsed: true,
    }
}

impl Vendor for HousecallPro {
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
        let mac = hmac_sha256(secret.expose(), &[ts.as_bytes(), b".", body]);
        Some(SignedSample::with_headers(vec![
            (TIMESTAMP.to_owned(), ts),
            (SIGNATURE.to_owned(), hex::encode(mac)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{build_with, headers, one_event, req};

    // Public vectors (shared/vendors.md).
    const SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";
    const PUBLIC_TS: &str = "1784871495";
    const PUBLIC_SIG: &str = "a0e715e3aadf86b13003475fdd315d96034bb61ee2304dd415050d113c0d5d7e";
    const PUBLIC_BODY: &str = r#"{"event":"customer.updated","event_occurred_at":"2026-07-24T05:38:14Z","company_id":"233b75f9-4b4f-4a83-b21b-c1ed9e571daa","customer":{"id":"cus_d8924aacf0d24a888280e12187e40f6f","first_name":"ZZ-Webhook","last_name":"Test-DELETE-ME"}}"#;

    // Signed by testdata/sign_vectors.py with Python's hmac/hashlib.
    const H_JOB_BODY: &str = r#"{"event":"job.completed","event_occurred_at":"2023-11-14T22:13:20Z","company_id":"co_1","job":{"id":"job_42","work_status":"complete"}}"#;
    const H_JOB_SIG: &str = r#"15bb34915d4d15030be67cda8c6da765d0e531b6ae3e8f55b7ccb54b06a7311e"#;
    const H_DATA_BODY: &str = r#"{"id":"evt_9f","event":"invoice.paid","created_at":"2023-11-14T22:13:20Z","company_id":"co_1","data":{"id":"inv_7"}}"#;
    const H_DATA_SIG: &str = r#"da6c0af690556ea10f34255482a640fa90549fc2c30db1e244234e5aaf9e2434"#;
    const H_JOB_SIG_PREVIOUS: &str =
        r#"e772155798b4432ed6101a63ef16a7fd603798292a3f507dda83cdadbba49a80"#;
    const H_TS: i64 = 1700000000;

    fn check(
        secrets: &[&str],
        pairs: &[(&str, &str)],
        body: &str,
        now: i64,
    ) -> Result<Verdict, Rejection> {
        let v = build_with(NAME, secrets, "");
        let h = headers(pairs);
        v.check(&req(&h, body.as_bytes(), None, now))
    }

    fn public(ts: &str) -> [(&'static str, &str); 2] {
        [("Api-Timestamp", ts), ("Api-Signature", PUBLIC_SIG)]
    }

    #[test]
    fn public_vector_is_accepted_and_normalized() {
        let event = one_event(check(
            &[SECRET],
            &public(PUBLIC_TS),
            PUBLIC_BODY,
            1784871495,
        ));
        assert_eq!(event.kind, "customer.updated");
        assert_eq!(
            event.entity,
            Some(EntityRef {
                kind: "customer".into(),
                id: "cus_d8924aacf0d24a888280e12187e40f6f".into(),
                url: None
            })
        );
        assert_eq!(event.occurred_at.as_deref(), Some("2026-07-24T05:38:14Z"));
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some(
                "233b75f9-4b4f-4a83-b21b-c1ed9e571daa|customer.updated|2026-07-24T05:38:14Z|cus_d8924aacf0d24a888280e12187e40f6f"
            )
        );
    }

    #[test]
    fn public_vector_with_timestamp_plus_one_is_rejected() {
        let r = check(&[SECRET], &public("1784871496"), PUBLIC_BODY, 1784871495);
        assert!(matches!(r, Err(Rejection::BadSignature(_))), "{r:?}");
    }

    #[test]
    fn public_url_check_is_answered_200_and_not_stored() {
        let r = check(&[SECRET], &[], r#"{"foo":"bar"}"#, 0);
        assert!(
            matches!(r, Ok(Verdict::Handshake { status: 200, .. })),
            "{r:?}"
        );
    }

    #[test]
    fn an_unsigned_body_with_an_event_key_is_rejected_not_taken_for_the_url_check() {
        let r = check(&[SECRET], &[], PUBLIC_BODY, 1784871495);
        assert_eq!(r, Err(Rejection::MissingHeader("Api-Signature".into())));
    }

    #[test]
    fn a_timestamp_without_a_signature_is_rejected_naming_the_signature() {
        let r = check(
            &[SECRET],
            &[("Api-Timestamp", PUBLIC_TS)],
            r#"{"foo":"bar"}"#,
            1784871495,
        );
        assert_eq!(r, Err(Rejection::MissingHeader("Api-Signature".into())));
    }

    #[test]
    fn a_signature_without_a_timestamp_is_rejected_naming_the_timestamp() {
        let r = check(
            &[SECRET],
            &[("Api-Signature", PUBLIC_SIG)],
            PUBLIC_BODY,
            1784871495,
        );
        assert_eq!(r, Err(Rejection::MissingHeader("Api-Timestamp".into())));
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected_with_five_minutes_tolerance() {
        let p = [
            ("Api-Timestamp", "1700000000"),
            ("Api-Signature", H_JOB_SIG),
        ];
        one_event(check(&[SECRET], &p, H_JOB_BODY, H_TS + 300));
        one_event(check(&[SECRET], &p, H_JOB_BODY, H_TS - 300));
        assert!(matches!(
            check(&[SECRET], &p, H_JOB_BODY, H_TS + 301),
            Err(Rejection::StaleTimestamp { skew: 301, .. })
        ));
        assert!(matches!(
            check(&[SECRET], &p, H_JOB_BODY, H_TS - 301),
            Err(Rejection::StaleTimestamp { skew: -301, .. })
        ));
    }

    #[test]
    fn tolerance_is_configurable() {
        let v = build_with(NAME, &[SECRET], "tolerance_secs = 0");
        let h = headers(&[
            ("Api-Timestamp", "1700000000"),
            ("Api-Signature", H_JOB_SIG),
        ]);
        one_event(v.check(&req(&h, H_JOB_BODY.as_bytes(), None, H_TS + 86_400)));
    }

    #[test]
    fn record_sits_under_the_events_first_part() {
        let p = [
            ("Api-Timestamp", "1700000000"),
            ("Api-Signature", H_JOB_SIG),
        ];
        let event = one_event(check(&[SECRET], &p, H_JOB_BODY, H_TS));
        assert_eq!(event.kind, "job.completed");
        assert_eq!(
            event.entity.map(|e| (e.kind, e.id)),
            Some(("job".into(), "job_42".into()))
        );
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some("co_1|job.completed|2023-11-14T22:13:20Z|job_42")
        );
    }

    #[test]
    fn the_id_event_created_at_data_envelope_is_accepted_and_dedupes_on_id() {
        let p = [
            ("Api-Timestamp", "1700000000"),
            ("Api-Signature", H_DATA_SIG),
        ];
        let event = one_event(check(&[SECRET], &p, H_DATA_BODY, H_TS));
        assert_eq!(event.kind, "invoice.paid");
        assert_eq!(
            event.entity.map(|e| (e.kind, e.id)),
            Some(("invoice".into(), "inv_7".into()))
        );
        assert_eq!(event.occurred_at.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(event.dedupe_key.as_deref(), Some("evt_9f"));
    }

    #[test]
    fn during_rotation_the_previous_secret_verifies() {
        let p = [
            ("Api-Timestamp", "1700000000"),
            ("Api-Signature", H_JOB_SIG_PREVIOUS),
        ];
        one_event(check(
            &[SECRET, "hcp_previous_secret"],
            &p,
            H_JOB_BODY,
            H_TS,
        ));
        assert!(matches!(
            check(&[SECRET], &p, H_JOB_BODY, H_TS),
            Err(Rejection::BadSignature(_))
        ));
    }

    #[test]
    fn no_dedupe_key_when_a_part_of_it_is_missing() {
        let n = normalize(br#"{"event":"job.created","company_id":"c","job":{"id":"j"}}"#);
        assert_eq!(n.dedupe_key, None);
        assert!(n.parsed);
    }

    #[test]
    fn a_signed_body_that_is_not_json_is_stored_unparsed() {
        let n = normalize(b"<html>");
        assert!(!n.parsed);
        assert_eq!(n.kind, "unknown");
    }

    #[test]
    fn a_non_hex_signature_is_malformed() {
        let r = check(
            &[SECRET],
            &[("Api-Timestamp", PUBLIC_TS), ("Api-Signature", "zz")],
            PUBLIC_BODY,
            1784871495,
        );
        assert!(matches!(r, Err(Rejection::MalformedHeader { .. })), "{r:?}");
    }
}
