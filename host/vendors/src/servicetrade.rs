//! ServiceTrade.
//!
//! - No signature: authenticated by the unguessable token in the callback
//!   URL (`/hooks/{source}/{token}`), compared in constant time.
//! - One message batches many entity changes:
//!   `{"messageId","timestamp":"<secs>","data":[{"action","timestamp":<secs>,
//!   "entity":{"type","id","uri"},"changeset":[..]}]}` -> one event per
//!   `data[]` item, kind `<entity type>.<action>` (`appointment.updated`),
//!   entity (type, id, uri), dedupe messageId + type + id + action.
//!   Messages may arrive out of order and more than once; ServiceTrade
//!   recommends debouncing per entity on the receiving side.
//! - Job changes with their own timestamp are keyed `job|<id>|<timestamp>`
//!   instead: the job and when it changed, which a poll of
//!   `GET /api/job?updatedAfter=` reproduces from the job's `updated`, so a
//!   change both a webhook and the `servicetrade-reconcile` schedule bring
//!   is stored once. (Two changes of one job within a second are one.)
//! - Any 200-499 counts as delivered, so a body over the limit is answered
//!   500 (see `status_for`).

use serde::Deserialize;
use serde_json::Value;

use super::ip_allowlist::Allowlist;
use super::payload::{composite_key, parse_json, scalar, scalar_at, slug, str_at, unparsed};
use super::signature::{matching_secret, secret_label};
use super::{
    EntityRef, Failure, Inbound, Normalized, Rejection, Secret, SignedSample, Trace, Vendor,
    VendorConfigError, Verdict,
};

const NAME: &str = "servicetrade";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Networks deliveries may come from; empty = any.
    #[serde(default)]
    allowed_ips: Vec<String>,
}

/// ServiceTrade verifier.
#[derive(Debug)]
pub(super) struct ServiceTrade {
    secrets: Vec<Secret>,
    allowed: Allowlist,
}

impl ServiceTrade {
    /// Build from the URL token(s) and the optional `allowed_ips`.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let Options { allowed_ips } = super::parse_options(NAME, options)?;
        let allowed = Allowlist::parse(NAME, &allowed_ips)?;
        Ok(ServiceTrade { secrets, allowed })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        self.allowed.check(req.peer, trace)?;
        let Some(token) = req.path_token.filter(|t| !t.is_empty()) else {
            trace.note(|| {
                "no token in the URL: ServiceTrade must call /hooks/{source}/{token}".to_owned()
            });
            return Err(Rejection::BadToken);
        };
        match matching_secret(token.as_bytes(), &self.secrets) {
            Some(i) => trace.note(|| format!("URL token matches {}", secret_label(i))),
            None => {
                trace.note(|| {
                    format!(
                        "URL token ({} chars) matches none of {} secret(s)",
                        token.len(),
                        self.secrets.len()
                    )
                });
                return Err(Rejection::BadToken);
            }
        }
        let events = normalize(req.body);
        trace.note(|| format!("message carries {} entity change(s)", events.len()));
        Ok(Verdict::Events(events))
    }
}

fn normalize(body: &[u8]) -> Vec<Normalized> {
    let Some(value) = parse_json(body) else {
        return vec![unparsed(None)];
    };
    let message_id = scalar_at(&value, "messageId");
    let message_time = scalar_at(&value, "timestamp");
    let Some(items) = value.get("data").and_then(Value::as_array) else {
        return vec![unparsed(message_id)];
    };
    if items.is_empty() {
        // Nothing changed, but the message is still stored (never dropped).
        return vec![Normalized {
            occurred_at: message_time,
            parsed: true,
            ..unparsed(message_id)
        }];
    }
    items
        .iter()
        .map(|item| {
            let action = str_at(item, "action").map(slug).filter(|a| !a.is_empty());
            let entity = item.get("entity");
            let entity_type = entity
                .and_then(|e| str_at(e, "type"))
                .map(slug)
                .filter(|t| !t.is_empty());
            let id = entity.and_then(|e| e.get("id")).and_then(scalar);
            let uri = entity.and_then(|e| str_at(e, "uri")).map(str::to_owned);
            let kind = match (&entity_type, &action) {
                (Some(t), Some(a)) => format!("{t}.{a}"),
                _ => "unknown".to_owned(),
            };
            let changed_at = item.get("timestamp").and_then(Value::as_u64);
            let dedupe_key = match (&message_id, &entity_type, &id, &action) {
                (_, Some(t), Some(i), Some(_)) if t == "job" && changed_at.is_some() => {
                    changed_at.map(|at| job_key(i, at))
                }
                (Some(m), Some(t), Some(i), Some(a)) => Some(composite_key(&[m, t, i, a])),
                _ => None,
            };
            Normalized {
                kind,
                entity: match (entity_type, id) {
                    (Some(kind), Some(id)) => Some(EntityRef { kind, id, url: uri }),
                    _ => None,
                },
                occurred_at: scalar_at(item, "timestamp").or_else(|| message_time.clone()),
                dedupe_key,
                parsed: true,
            }
        })
        .collect()
}

/// The dedupe key of job `id` as it was at `changed_at` (Unix seconds):
/// the same from a webhook and from a poll of the job API.
fn job_key(id: &str, changed_at: u64) -> String {
    composite_key(&["job", id, &changed_at.to_string()])
}

impl Vendor for ServiceTrade {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, req: &Inbound<'_>) -> Result<Verdict, Rejection> {
        self.verify(req, &mut Trace::off())
    }

    fn check_traced(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        self.verify(req, trace)
    }

    fn sign_sample(&self, _body: &[u8], _now: i64) -> Option<SignedSample> {
        let token = std::str::from_utf8(self.secrets.first()?.expose()).ok()?;
        Some(SignedSample {
            headers: Vec::new(),
            path_token: Some(token.to_owned()),
        })
    }

    /// ServiceTrade counts any 200-499 as delivered and drops the message
    /// after 3 attempts.
    ///
    /// - Rejected (wrong or missing URL token): 401. The request is not
    ///   authenticated, so it gets no retry-inviting 5xx; a real ServiceTrade
    ///   message sent with a wrong token is lost either way (3 quick retries
    ///   would not fix the configuration), and fieldhook logs the rejection.
    /// - Body over the limit: 500, so ServiceTrade retries instead of
    ///   counting it delivered.
    /// - Store unavailable: 503, retried.
    fn status_for(&self, failure: Failure) -> u16 {
        match failure {
            Failure::Rejected => 401,
            Failure::TooLarge => 500,
            Failure::StoreUnavailable => 503,
            // A 408 would count as delivered and lose the message.
            Failure::TimedOut => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{build_with, events, headers, one_event, req};

    const TOKEN: &str = "st-url-token-3b9e41c07d2a5f68";
    const MESSAGE: &str = r#"{"messageId":"6f1d2c3b-1111-4222-8333-944455556666","timestamp":"1401833057","data":[{"action":"updated","timestamp":1401833052,"userId":1234,"entity":{"type":"appointment","id":34872,"uri":"https://api.servicetrade.com/api/appointment/34872"},"changeset":[{"field":"status","oldValue":"scheduled","newValue":"completed"}]},{"action":"created","timestamp":1401833053,"userId":1234,"entity":{"type":"jobitem","id":99,"uri":"https://api.servicetrade.com/api/jobitem/99"},"changeset":[]}]}"#;

    fn check(body: &str, token: Option<&str>) -> Result<Verdict, Rejection> {
        let v = build_with(NAME, &[TOKEN], "");
        let h = headers(&[]);
        v.check(&req(&h, body.as_bytes(), token, 0))
    }

    #[test]
    fn one_event_per_entity_change_with_kind_entity_and_dedupe() {
        let all = events(check(MESSAGE, Some(TOKEN)));
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].kind, "appointment.updated");
        assert_eq!(
            all[0].entity,
            Some(EntityRef {
                kind: "appointment".into(),
                id: "34872".into(),
                url: Some("https://api.servicetrade.com/api/appointment/34872".into())
            })
        );
        assert_eq!(
            all[0].occurred_at.as_deref(),
            Some("1401833052"),
            "the entity's integer timestamp"
        );
        assert_eq!(
            all[0].dedupe_key.as_deref(),
            Some("6f1d2c3b-1111-4222-8333-944455556666|appointment|34872|updated")
        );
        assert_eq!(all[1].kind, "jobitem.created");
        assert_eq!(all[1].entity.as_ref().map(|e| e.id.as_str()), Some("99"));
    }

    #[test]
    fn a_job_change_is_keyed_on_the_job_and_its_change_time_as_a_poll_of_the_job_api_keys_it() {
        let first = r#"{"messageId":"m-1","timestamp":"1401833057","data":[{"action":"updated","timestamp":1401833052,"entity":{"type":"job","id":5521,"uri":"https://api.servicetrade.com/api/job/5521"}}]}"#;
        let resent = r#"{"messageId":"m-2","timestamp":"1401833090","data":[{"action":"updated","timestamp":1401833052,"entity":{"type":"job","id":5521}}]}"#;
        let key = |body| one_event(check(body, Some(TOKEN))).dedupe_key;
        assert_eq!(key(first).as_deref(), Some("job|5521|1401833052"));
        assert_eq!(
            key(first),
            key(resent),
            "one change of a job is one event, whichever message brings it"
        );
        assert_eq!(job_key("5521", 1401833052), "job|5521|1401833052");
    }

    #[test]
    fn a_wrong_missing_or_empty_url_token_is_rejected() {
        assert_eq!(check(MESSAGE, None), Err(Rejection::BadToken));
        assert_eq!(check(MESSAGE, Some("")), Err(Rejection::BadToken));
        assert_eq!(
            check(MESSAGE, Some("st-url-token-3b9e41c07d2a5f69")),
            Err(Rejection::BadToken)
        );
    }

    #[test]
    fn during_rotation_the_previous_url_token_is_accepted() {
        let v = build_with(NAME, &["new-token", TOKEN], "");
        let h = headers(&[]);
        assert_eq!(
            events(v.check(&req(&h, MESSAGE.as_bytes(), Some(TOKEN), 0))).len(),
            2
        );
    }

    #[test]
    fn the_message_timestamp_string_is_used_when_an_entity_has_none() {
        let body = r#"{"messageId":"m","timestamp":"1401833057","data":[{"action":"deleted","entity":{"type":"job","id":"5"}}]}"#;
        let event = one_event(check(body, Some(TOKEN)));
        assert_eq!(event.kind, "job.deleted");
        assert_eq!(event.occurred_at.as_deref(), Some("1401833057"));
        assert_eq!(event.entity.and_then(|e| e.url), None);
    }

    #[test]
    fn an_empty_batch_is_still_stored_once() {
        let event = one_event(check(
            r#"{"messageId":"m","timestamp":"1","data":[]}"#,
            Some(TOKEN),
        ));
        assert_eq!(event.kind, "unknown");
        assert!(event.parsed);
        assert_eq!(event.dedupe_key.as_deref(), Some("m"));
    }

    #[test]
    fn malformed_json_from_a_verified_sender_is_stored_unparsed() {
        let event = one_event(check("[[[", Some(TOKEN)));
        assert!(!event.parsed);
        assert_eq!(event.kind, "unknown");
    }

    #[test]
    fn an_entity_change_without_ids_gets_no_dedupe_key() {
        let body = r#"{"messageId":"m","data":[{"action":"updated","entity":{"type":"job"}}]}"#;
        let event = one_event(check(body, Some(TOKEN)));
        assert_eq!(event.kind, "job.updated");
        assert_eq!(event.entity, None);
        assert_eq!(event.dedupe_key, None);
    }

    #[test]
    fn too_large_is_a_5xx_because_servicetrade_counts_any_4xx_as_delivered() {
        let v = build_with(NAME, &[TOKEN], "");
        assert_eq!(v.status_for(Failure::TooLarge), 500);
        assert_eq!(v.status_for(Failure::StoreUnavailable), 503);
        assert_eq!(v.status_for(Failure::Rejected), 401);
        assert_eq!(
            v.status_for(Failure::TimedOut),
            503,
            "a 408 counts as delivered"
        );
    }

    #[test]
    fn allowed_ips_accept_only_listed_peers() {
        let v = build_with(
            NAME,
            &[TOKEN],
            "allowed_ips = [\"127.0.0.1\", \"2001:db8::/32\"]",
        );
        let h = headers(&[]);
        for (ip, ok) in [
            ("127.0.0.1", true),
            ("2001:db8::5", true),
            ("127.0.0.2", false),
        ] {
            let mut r = req(&h, MESSAGE.as_bytes(), Some(TOKEN), 0);
            r.peer = Some(ip.parse().expect("test ip"));
            assert_eq!(v.check(&r).is_ok(), ok, "{ip}");
        }
    }
}
