//! ServiceM8.
//!
//! - Webhooks carry no signature: they are authenticated by the unguessable
//!   token in the callback URL (`/hooks/{source}/{token}`), compared in
//!   constant time with the source's secret(s).
//! - Subscription check: a form POST `mode=subscribe&challenge=X` (to the
//!   same URL, token included) is answered 200 `text/plain` with exactly `X`
//!   and not stored.
//! - Object webhooks, JSON or form-encoded:
//!   `{"object":"job","entry":[{"changed_fields":[..],"time":..,"uuid":..}],"resource_url":..}`
//!   -> one event per entry, kind `<object>.updated`, entity (object, uuid,
//!   resource_url), dedupe object + uuid + time + changed fields. Values are
//!   not included: plugins fetch `resource_url`.
//! - Event webhooks (`job.completed`, ...): a payload naming its event in
//!   `event` / `eventName` gets that name as its kind.
//! - Add-on callbacks: the whole body is a JWT (HS256, keyed by the add-on's
//!   app secret). Such a body is verified with the source's secret(s) instead
//!   of the URL token, and its claims are normalized: `webhook_subscription`
//!   events like object webhooks, action events as `addon.<event name>`.
//!   A source's secret is either a URL token or an app secret, so use one
//!   source per channel.
//!
//! Answers: ServiceM8 unsubscribes on 410 and throttles the account for 15
//! minutes on 429, so neither is ever sent. Any other 4xx/5xx is retried for
//! up to 72 hours, then the subscription is cancelled; see [`ServiceM8`]'s
//! `status_for` for the codes chosen.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::ip_allowlist::Allowlist;
use super::payload::{
    composite_key, form_pairs, form_value, parse_json, scalar, slug, str_at, unparsed,
};
use super::signature::{ct_eq, decode_base64, hmac_sha256, matching_secret, secret_label, shorten};
use super::{
    EntityRef, Failure, Inbound, Normalized, Rejection, Secret, SignedSample, Trace, Vendor,
    VendorConfigError, Verdict,
};

const NAME: &str = "servicem8";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Networks deliveries may come from; empty = any.
    #[serde(default)]
    allowed_ips: Vec<String>,
}

/// ServiceM8 verifier.
#[derive(Debug)]
pub(super) struct ServiceM8 {
    secrets: Vec<Secret>,
    allowed: Allowlist,
}

impl ServiceM8 {
    /// Build from the URL token(s) (or the add-on app secret) and the
    /// optional `allowed_ips`.
    pub(super) fn build(
        secrets: Vec<Secret>,
        options: toml::Table,
    ) -> Result<Self, VendorConfigError> {
        let Options { allowed_ips } = super::parse_options(NAME, options)?;
        let allowed = Allowlist::parse(NAME, &allowed_ips)?;
        Ok(ServiceM8 { secrets, allowed })
    }

    fn verify(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        self.allowed.check(req.peer, trace)?;
        let trimmed = req.body.trim_ascii();
        if let Some(token) = as_jwt(trimmed) {
            trace.note(|| "body is a JWT: an add-on callback, verified with HS256 instead of the URL token".to_owned());
            let claims = self.verify_jwt(token, trace)?;
            return Ok(Verdict::Events(match claims {
                Some(claims) => normalize_addon(&claims),
                None => vec![unparsed(None)],
            }));
        }

        let Some(token) = req.path_token.filter(|t| !t.is_empty()) else {
            trace.note(|| {
                "no token in the URL: ServiceM8 must call /hooks/{source}/{token}".to_owned()
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

        let form = if trimmed.first() == Some(&b'{') {
            None
        } else {
            form_pairs(trimmed)
        };
        if let Some(pairs) = &form
            && form_value(pairs, "mode") == Some("subscribe")
            && let Some(challenge) = form_value(pairs, "challenge")
        {
            trace.note(|| {
                format!(
                    "subscription check: echo challenge `{}`",
                    shorten(challenge, 80)
                )
            });
            return Ok(Verdict::Handshake {
                status: 200,
                content_type: "text/plain",
                body: challenge.as_bytes().to_vec(),
            });
        }

        let value = parse_json(req.body).or_else(|| form.as_deref().and_then(form_to_json));
        Ok(Verdict::Events(match value {
            Some(value) => normalize(&value),
            None => vec![unparsed(None)],
        }))
    }

    /// Verify an add-on JWT; `Ok(None)` when verified but the claims are not
    /// a JSON object.
    fn verify_jwt(&self, token: &str, trace: &mut Trace) -> Result<Option<Value>, Rejection> {
        let bad = |why: &str| Rejection::BadSignature(format!("add-on JWT: {why}"));
        let mut parts = token.split('.');
        let (Some(head), Some(payload), Some(sig)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not three parts"));
        };
        let header = decode_base64(head)
            .and_then(|h| parse_json(&h))
            .ok_or_else(|| bad("header is not base64url JSON"))?;
        let alg = str_at(&header, "alg").unwrap_or("(none)");
        if alg != "HS256" {
            trace.note(|| format!("JWT alg `{}`", shorten(alg, 20)));
            return Err(bad(&format!(
                "alg `{}` refused; ServiceM8 signs with HS256",
                shorten(alg, 20)
            )));
        }
        let given = decode_base64(sig).ok_or_else(|| bad("signature is not base64url"))?;
        let mut matched = None;
        for (i, secret) in self.secrets.iter().enumerate() {
            let expected = hmac_sha256(
                secret.expose(),
                &[head.as_bytes(), b".", payload.as_bytes()],
            );
            let hit = ct_eq(&given, &expected);
            trace.note(|| {
                format!(
                    "{}: HS256 -> {}",
                    secret_label(i),
                    if hit { "match" } else { "no match" }
                )
            });
            if hit && matched.is_none() {
                matched = Some(i);
            }
        }
        if matched.is_none() {
            return Err(bad(&format!(
                "HS256 signature matches none of {} secret(s) (the key is the add-on's app secret)",
                self.secrets.len()
            )));
        }
        Ok(decode_base64(payload)
            .and_then(|p| parse_json(&p))
            .filter(Value::is_object))
    }
}

/// The body as a compact JWT (`xxx.yyy.zzz`, base64url parts), if it is one.
fn as_jwt(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let parts: Vec<&str> = text.split('.').collect();
    let base64url = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b))
    };
    (parts.len() == 3 && parts.iter().all(base64url)).then_some(text)
}

/// Claims of an add-on callback.
fn normalize_addon(claims: &Value) -> Vec<Normalized> {
    let Some(event_name) = str_at(claims, "eventName") else {
        return vec![unparsed(None)];
    };
    let args = claims.get("eventArgs").unwrap_or(&Value::Null);
    if event_name == "webhook_subscription" && args.is_object() {
        return normalize(args);
    }
    let entity = [("jobUUID", "job"), ("companyUUID", "company")]
        .iter()
        .find_map(|(field, kind)| {
            args.get(*field).and_then(scalar).map(|id| EntityRef {
                kind: (*kind).to_owned(),
                id,
                url: None,
            })
        });
    vec![Normalized {
        kind: format!("addon.{}", slug(event_name)),
        entity,
        occurred_at: None,
        dedupe_key: None,
        parsed: true,
    }]
}

/// Event-name fields of event webhooks.
const EVENT_FIELDS: &[&str] = &["event", "eventName", "event_name"];
/// Fields that may hold an event webhook's occurred-at.
const TIME_FIELDS: &[&str] = &[
    "/time",
    "/timestamp",
    "/event_time",
    "/occurred_at",
    "/created_at",
    "/data/time",
    "/data/timestamp",
];

/// Object or event webhook: one event per `entry`.
fn normalize(value: &Value) -> Vec<Normalized> {
    let event_name = EVENT_FIELDS
        .iter()
        .find_map(|k| str_at(value, k))
        .filter(|e| e.contains('.') && e.len() <= 200);
    let object = str_at(value, "object").map(slug).filter(|o| !o.is_empty());
    let entity_type = object.clone().or_else(|| {
        event_name
            .and_then(|e| e.split_once('.'))
            .map(|(first, _)| slug(first))
    });
    let (Some(entity_type), kind) = (entity_type, event_name.map(str::to_owned)) else {
        return vec![unparsed(None)];
    };
    let kind = kind.unwrap_or_else(|| format!("{entity_type}.updated"));
    let resource_url = str_at(value, "resource_url");
    let entries: Vec<&Value> = value
        .get("entry")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|e| e.is_object()).collect())
        .unwrap_or_default();

    if entries.is_empty() {
        // An event webhook: the entity and time sit in the payload itself.
        let id = [
            "/data/uuid".to_owned(),
            "/uuid".to_owned(),
            format!("/data/{entity_type}_uuid"),
            format!("/{entity_type}_uuid"),
            "/object_uuid".to_owned(),
            "/data/object_uuid".to_owned(),
        ]
        .iter()
        .find_map(|p| value.pointer(p).and_then(scalar));
        let time = TIME_FIELDS
            .iter()
            .find_map(|p| value.pointer(p).and_then(scalar));
        let event_id = ["/event_id", "/eventId", "/webhook_id"]
            .iter()
            .find_map(|p| value.pointer(p).and_then(scalar));
        let dedupe_key = event_id.or_else(|| {
            Some(composite_key(&[
                kind.as_str(),
                id.as_deref()?,
                time.as_deref()?,
            ]))
        });
        return vec![Normalized {
            kind,
            entity: id.map(|id| EntityRef {
                kind: entity_type,
                url: resource_url.map(str::to_owned),
                id,
            }),
            occurred_at: time,
            dedupe_key,
            parsed: true,
        }];
    }

    let single = entries.len() == 1;
    entries
        .into_iter()
        .map(|entry| {
            let uuid = str_at(entry, "uuid");
            let time = str_at(entry, "time");
            let changed: Vec<&str> = entry
                .get("changed_fields")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let url = resource_url.filter(|url| single || uuid.is_some_and(|u| url.contains(u)));
            Normalized {
                kind: kind.clone(),
                entity: uuid.map(|id| EntityRef {
                    kind: entity_type.clone(),
                    id: id.to_owned(),
                    url: url.map(str::to_owned),
                }),
                occurred_at: time.map(str::to_owned),
                dedupe_key: match (uuid, time) {
                    (Some(uuid), Some(time)) => Some(composite_key(&[
                        entity_type.as_str(),
                        uuid,
                        time,
                        changed.join(",").as_str(),
                    ])),
                    _ => None,
                },
                parsed: true,
            }
        })
        .collect()
}

/// Most `[..]` segments read from one form field name.
const MAX_FORM_DEPTH: usize = 8;

/// A form-encoded webhook as JSON. Accepts the whole payload as JSON in one
/// field, JSON-valued fields (`entry=[...]`), and bracketed names
/// (`entry[0][uuid]=..`, `entry[0][changed_fields][]=..`).
fn form_to_json(pairs: &[(String, String)]) -> Option<Value> {
    for (_, value) in pairs {
        if let Some(whole) = serde_json::from_str::<Value>(value)
            .ok()
            .filter(|v| v.get("object").is_some())
        {
            return Some(whole);
        }
    }
    let mut root = Value::Object(Map::new());
    for (name, text) in pairs {
        let value = match text.trim_start().as_bytes().first() {
            Some(b'[' | b'{') => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
            }
            _ => Value::String(text.clone()),
        };
        insert_path(&mut root, &form_path(name), value);
    }
    let root = arrays_from_indexes(root, 0);
    root.get("object").is_some().then_some(root)
}

/// `entry[0][uuid]` -> `["entry", "0", "uuid"]`; anything odd stays one key.
fn form_path(name: &str) -> Vec<&str> {
    let Some(open) = name.find('[') else {
        return vec![name];
    };
    let mut path = vec![&name[..open]];
    let mut rest = &name[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return vec![name];
        };
        path.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    if !rest.is_empty() || path.len() > MAX_FORM_DEPTH || path[0].is_empty() {
        return vec![name];
    }
    path
}

fn insert_path(root: &mut Value, path: &[&str], value: Value) {
    let mut cursor = root;
    for (i, segment) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        if cursor.is_null() {
            *cursor = if segment.is_empty() {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            };
        }
        let next = match (cursor, segment.is_empty()) {
            (Value::Array(items), true) => {
                items.push(if last { value.clone() } else { Value::Null });
                items.last_mut()
            }
            (Value::Object(map), false) => {
                if last {
                    map.insert((*segment).to_owned(), value.clone());
                    None
                } else {
                    Some(map.entry((*segment).to_owned()).or_insert(Value::Null))
                }
            }
            _ => None, // `a=1&a[b]=2`: keep the first shape, drop the clash
        };
        match next {
            Some(next) if !last => cursor = next,
            _ => return,
        }
    }
}

/// Objects whose keys are all indexes (`{"0":..,"1":..}`) become arrays.
fn arrays_from_indexes(value: Value, depth: usize) -> Value {
    if depth > MAX_FORM_DEPTH {
        return value;
    }
    match value {
        Value::Object(map) => {
            let all_indexes = !map.is_empty()
                && map.keys().all(|k| {
                    !k.is_empty() && k.len() < 10 && k.bytes().all(|b| b.is_ascii_digit())
                });
            if all_indexes {
                let mut items: Vec<(u64, Value)> = map
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.parse().unwrap_or(u64::MAX),
                            arrays_from_indexes(v, depth + 1),
                        )
                    })
                    .collect();
                items.sort_by_key(|(k, _)| *k);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (k, arrays_from_indexes(v, depth + 1)))
                        .collect(),
                )
            }
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| arrays_from_indexes(v, depth + 1))
                .collect(),
        ),
        other => other,
    }
}

impl Vendor for ServiceM8 {
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

    /// ServiceM8 unsubscribes on 410 and throttles on 429; any other
    /// 4xx/5xx is retried for up to 72 hours and then the subscription is
    /// cancelled.
    ///
    /// - Rejected (wrong or missing URL token, bad add-on JWT): 401. A wrong
    ///   token is a misconfiguration (or not ServiceM8 at all); 401 makes
    ///   ServiceM8 retry for 72 hours, which leaves the operator time to fix
    ///   the token before anything is lost.
    /// - Body over the limit: 500, not 413. Both are retried per the docs,
    ///   but a 5xx is unambiguously "try again" to any proxy or future
    ///   ServiceM8 behaviour, while a 4xx reads as "your request is wrong":
    ///   raising the limit within 72 hours recovers every delivery.
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

    const TOKEN: &str = "m8-url-token-6f1c0d2b9a8e4f37";

    // Signed by testdata/sign_vectors.py with Python's hmac/hashlib.
    const M8_APP_SECRET: &str = r#"servicem8-addon-app-secret-EXAMPLE"#;
    const M8_JWT_WEBHOOK: &str = r#"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJldmVudFZlcnNpb24iOiIxLjAiLCJldmVudE5hbWUiOiJ3ZWJob29rX3N1YnNjcmlwdGlvbiIsImF1dGgiOnsiYWNjb3VudFVVSUQiOiJhY2MtMSIsInN0YWZmVVVJRCI6InN0YWZmLTEifSwiZXZlbnRBcmdzIjp7Im9iamVjdCI6ImpvYiIsImVudHJ5IjpbeyJjaGFuZ2VkX2ZpZWxkcyI6WyJzdGF0dXMiXSwidGltZSI6IjIwMjQtMDUtMDEgMTA6MDA6MDAiLCJ1dWlkIjoiam9iLXV1aWQtMSJ9XSwicmVzb3VyY2VfdXJsIjoiaHR0cHM6Ly9hcGkuc2VydmljZW04LmNvbS9hcGlfMS4wL2pvYi9qb2ItdXVpZC0xLmpzb24ifX0.2GA4mT7RMwagw4n2OiOGPP9Y81q8j5uM-8ootLA_Clo"#;
    const M8_JWT_ACTION: &str = r#"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJldmVudFZlcnNpb24iOiIxLjAiLCJldmVudE5hbWUiOiJTZW5kX1RvX0FjY291bnRzIiwiYXV0aCI6eyJhY2NvdW50VVVJRCI6ImFjYy0xIiwic3RhZmZVVUlEIjoic3RhZmYtMSJ9LCJldmVudEFyZ3MiOnsiam9iVVVJRCI6ImpvYi11dWlkLTIifX0.7AjWvQueGhrIbqD0NSHGndWRKxN07ooancLPFba5B-Q"#;
    const M8_JWT_OTHER_KEY: &str = r#"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJldmVudFZlcnNpb24iOiIxLjAiLCJldmVudE5hbWUiOiJ3ZWJob29rX3N1YnNjcmlwdGlvbiIsImF1dGgiOnsiYWNjb3VudFVVSUQiOiJhY2MtMSIsInN0YWZmVVVJRCI6InN0YWZmLTEifSwiZXZlbnRBcmdzIjp7Im9iamVjdCI6ImpvYiIsImVudHJ5IjpbeyJjaGFuZ2VkX2ZpZWxkcyI6WyJzdGF0dXMiXSwidGltZSI6IjIwMjQtMDUtMDEgMTA6MDA6MDAiLCJ1dWlkIjoiam9iLXV1aWQtMSJ9XSwicmVzb3VyY2VfdXJsIjoiaHR0cHM6Ly9hcGkuc2VydmljZW04LmNvbS9hcGlfMS4wL2pvYi9qb2ItdXVpZC0xLmpzb24ifX0.1gzC58EVBc58DrmoEEMcv0k_Va4g_2ev7RvR6ba54HM"#;
    const M8_JWT_ALG_NONE: &str = r#"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJldmVudFZlcnNpb24iOiIxLjAiLCJldmVudE5hbWUiOiJ3ZWJob29rX3N1YnNjcmlwdGlvbiIsImF1dGgiOnsiYWNjb3VudFVVSUQiOiJhY2MtMSIsInN0YWZmVVVJRCI6InN0YWZmLTEifSwiZXZlbnRBcmdzIjp7Im9iamVjdCI6ImpvYiIsImVudHJ5IjpbeyJjaGFuZ2VkX2ZpZWxkcyI6WyJzdGF0dXMiXSwidGltZSI6IjIwMjQtMDUtMDEgMTA6MDA6MDAiLCJ1dWlkIjoiam9iLXV1aWQtMSJ9XSwicmVzb3VyY2VfdXJsIjoiaHR0cHM6Ly9hcGkuc2VydmljZW04LmNvbS9hcGlfMS4wL2pvYi9qb2ItdXVpZC0xLmpzb24ifX0.c2lnbmF0dXJl"#;

    const OBJECT_BODY: &str = r#"{"object":"job","entry":[{"changed_fields":["status","total"],"time":"2015-01-01 00:00:00","uuid":"a1b2"}],"resource_url":"https://api.servicem8.com/api_1.0/job/a1b2.json"}"#;

    fn check(secrets: &[&str], body: &str, token: Option<&str>) -> Result<Verdict, Rejection> {
        let v = build_with(NAME, secrets, "");
        let h = headers(&[("Content-Type", "application/x-www-form-urlencoded")]);
        v.check(&req(&h, body.as_bytes(), token, 0))
    }

    #[test]
    fn public_subscription_check_echoes_the_challenge_exactly_and_stores_nothing() {
        let r = check(
            &[TOKEN],
            "mode=subscribe&challenge=7f3c2a9e41b8",
            Some(TOKEN),
        );
        assert_eq!(
            r,
            Ok(Verdict::Handshake {
                status: 200,
                content_type: "text/plain",
                body: b"7f3c2a9e41b8".to_vec()
            })
        );
    }

    #[test]
    fn the_subscription_check_needs_the_url_token_too() {
        assert_eq!(
            check(&[TOKEN], "mode=subscribe&challenge=7f3c2a9e41b8", None),
            Err(Rejection::BadToken)
        );
        assert_eq!(
            check(
                &[TOKEN],
                "mode=subscribe&challenge=7f3c2a9e41b8",
                Some("guess")
            ),
            Err(Rejection::BadToken)
        );
    }

    #[test]
    fn a_wrong_missing_or_empty_url_token_is_rejected() {
        assert_eq!(check(&[TOKEN], OBJECT_BODY, None), Err(Rejection::BadToken));
        assert_eq!(
            check(&[TOKEN], OBJECT_BODY, Some("")),
            Err(Rejection::BadToken)
        );
        assert_eq!(
            check(&[TOKEN], OBJECT_BODY, Some(&TOKEN[1..])),
            Err(Rejection::BadToken)
        );
        assert_eq!(
            check(&[TOKEN], OBJECT_BODY, Some(&format!("{TOKEN}x"))),
            Err(Rejection::BadToken)
        );
    }

    #[test]
    fn during_rotation_the_previous_url_token_is_accepted() {
        one_event(check(&["new-token", TOKEN], OBJECT_BODY, Some(TOKEN)));
    }

    #[test]
    fn object_webhook_becomes_object_updated_with_entity_and_composite_dedupe() {
        let event = one_event(check(&[TOKEN], OBJECT_BODY, Some(TOKEN)));
        assert_eq!(event.kind, "job.updated");
        assert_eq!(
            event.entity,
            Some(EntityRef {
                kind: "job".into(),
                id: "a1b2".into(),
                url: Some("https://api.servicem8.com/api_1.0/job/a1b2.json".into())
            })
        );
        assert_eq!(event.occurred_at.as_deref(), Some("2015-01-01 00:00:00"));
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some("job|a1b2|2015-01-01 00:00:00|status,total")
        );
        assert!(event.parsed);
    }

    #[test]
    fn each_entry_of_an_object_webhook_is_its_own_event() {
        let body = r#"{"object":"JobActivity","entry":[{"changed_fields":["start_date"],"time":"2024-01-01 00:00:00","uuid":"u1"},{"changed_fields":[],"time":"2024-01-01 00:00:01","uuid":"u2"}],"resource_url":"https://api.servicem8.com/api_1.0/jobactivity/u2.json"}"#;
        let all = events(check(&[TOKEN], body, Some(TOKEN)));
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].kind, "jobactivity.updated");
        assert_eq!(
            all[0].entity.as_ref().and_then(|e| e.url.clone()),
            None,
            "the URL names u2, not u1"
        );
        assert_eq!(
            all[1].entity.as_ref().and_then(|e| e.url.as_deref()),
            Some("https://api.servicem8.com/api_1.0/jobactivity/u2.json")
        );
        assert_ne!(all[0].dedupe_key, all[1].dedupe_key);
    }

    #[test]
    fn form_encoded_object_webhooks_are_accepted_with_a_json_entry_field() {
        let body = "object=job&entry=%5B%7B%22changed_fields%22%3A%5B%22status%22%5D%2C%22time%22%3A%222015-01-01+00%3A00%3A00%22%2C%22uuid%22%3A%22a1b2%22%7D%5D&resource_url=https%3A%2F%2Fapi.servicem8.com%2Fapi_1.0%2Fjob%2Fa1b2.json";
        let event = one_event(check(&[TOKEN], body, Some(TOKEN)));
        assert_eq!(event.kind, "job.updated");
        assert_eq!(event.entity.map(|e| e.id), Some("a1b2".into()));
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some("job|a1b2|2015-01-01 00:00:00|status")
        );
    }

    #[test]
    fn form_encoded_object_webhooks_are_accepted_with_bracketed_names() {
        let body = "object=job&entry%5B0%5D%5Buuid%5D=a1b2&entry%5B0%5D%5Btime%5D=2015-01-01+00%3A00%3A00&entry%5B0%5D%5Bchanged_fields%5D%5B%5D=status&entry%5B0%5D%5Bchanged_fields%5D%5B%5D=total";
        let event = one_event(check(&[TOKEN], body, Some(TOKEN)));
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some("job|a1b2|2015-01-01 00:00:00|status,total")
        );
    }

    #[test]
    fn event_webhooks_keep_their_event_name_as_kind() {
        let body =
            r#"{"event":"job.completed","data":{"uuid":"j-9"},"time":"2024-02-02 10:00:00"}"#;
        let event = one_event(check(&[TOKEN], body, Some(TOKEN)));
        assert_eq!(event.kind, "job.completed");
        assert_eq!(
            event.entity.map(|e| (e.kind, e.id)),
            Some(("job".into(), "j-9".into()))
        );
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some("job.completed|j-9|2024-02-02 10:00:00")
        );
    }

    #[test]
    fn malformed_json_from_a_verified_sender_is_stored_unparsed() {
        let event = one_event(check(&[TOKEN], "{not json", Some(TOKEN)));
        assert!(!event.parsed);
        assert_eq!(event.kind, "unknown");
    }

    #[test]
    fn addon_jwt_webhook_subscription_is_verified_with_the_app_secret_and_normalized() {
        let event = one_event(check(&[M8_APP_SECRET], M8_JWT_WEBHOOK, None));
        assert_eq!(event.kind, "job.updated");
        assert_eq!(
            event.entity,
            Some(EntityRef {
                kind: "job".into(),
                id: "job-uuid-1".into(),
                url: Some("https://api.servicem8.com/api_1.0/job/job-uuid-1.json".into())
            })
        );
        assert_eq!(
            event.dedupe_key.as_deref(),
            Some("job|job-uuid-1|2024-05-01 10:00:00|status")
        );
    }

    #[test]
    fn addon_jwt_action_event_becomes_addon_kind() {
        let event = one_event(check(&[M8_APP_SECRET], M8_JWT_ACTION, None));
        assert_eq!(event.kind, "addon.send_to_accounts");
        assert_eq!(
            event.entity.map(|e| (e.kind, e.id)),
            Some(("job".into(), "job-uuid-2".into()))
        );
    }

    #[test]
    fn addon_jwt_signed_with_another_key_is_rejected() {
        let r = check(&[M8_APP_SECRET], M8_JWT_OTHER_KEY, None);
        assert!(matches!(r, Err(Rejection::BadSignature(_))), "{r:?}");
    }

    #[test]
    fn addon_jwt_with_alg_none_is_rejected() {
        let r = check(&[M8_APP_SECRET], M8_JWT_ALG_NONE, None);
        assert!(
            matches!(r, Err(Rejection::BadSignature(ref m)) if m.contains("alg `none`")),
            "{r:?}"
        );
    }

    #[test]
    fn addon_jwt_with_a_changed_payload_is_rejected() {
        let mut parts: Vec<String> = M8_JWT_WEBHOOK.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replacen("e", "f", 1);
        let r = check(&[M8_APP_SECRET], &parts.join("."), None);
        assert!(matches!(r, Err(Rejection::BadSignature(_))), "{r:?}");
    }

    #[test]
    fn status_codes_never_unsubscribe_and_retry_instead_of_losing_data() {
        let v = build_with(NAME, &[TOKEN], "");
        assert_eq!(v.status_for(Failure::Rejected), 401);
        assert_eq!(v.status_for(Failure::TooLarge), 500);
        assert_eq!(v.status_for(Failure::StoreUnavailable), 503);
        assert_eq!(v.status_for(Failure::TimedOut), 503);
    }

    #[test]
    fn form_paths_parse_brackets_and_keep_odd_names_whole() {
        assert_eq!(form_path("entry[0][uuid]"), vec!["entry", "0", "uuid"]);
        assert_eq!(form_path("a[]"), vec!["a", ""]);
        assert_eq!(form_path("a[b"), vec!["a[b"]);
        assert_eq!(form_path("[x]"), vec!["[x]"]);
        assert_eq!(
            form_path("a[1][2][3][4][5][6][7][8]"),
            vec!["a[1][2][3][4][5][6][7][8]"]
        );
    }

    #[test]
    fn allowed_ips_refuse_a_peer_outside_the_list_even_with_the_right_token() {
        let v = build_with(NAME, &[TOKEN], "allowed_ips = [\"203.0.113.0/24\"]");
        let h = headers(&[]);
        let from = |ip: Option<&str>| {
            let mut r = req(&h, OBJECT_BODY.as_bytes(), Some(TOKEN), 0);
            r.peer = ip.map(|ip| ip.parse().expect("test ip"));
            v.check(&r)
        };
        assert!(matches!(from(Some("203.0.113.9")), Ok(Verdict::Events(_))));
        assert_eq!(
            from(Some("198.51.100.1")),
            Err(Rejection::PeerNotAllowed("198.51.100.1".into()))
        );
        assert!(matches!(from(None), Err(Rejection::PeerNotAllowed(_))));
        // The handshake is behind the allowlist too.
        let mut r = req(&h, b"mode=subscribe&challenge=x", Some(TOKEN), 0);
        r.peer = Some("198.51.100.1".parse().expect("test ip"));
        assert!(matches!(v.check(&r), Err(Rejection::PeerNotAllowed(_))));
    }

    #[test]
    fn a_malformed_allowed_ips_entry_is_a_configuration_error() {
        let err = crate::build(
            NAME,
            vec![Secret::new(TOKEN.as_bytes().to_vec())],
            toml::from_str("allowed_ips = [\"10.0.0.1/8\"]").expect("toml"),
        )
        .expect_err("host bits set");
        assert!(err.to_string().contains("allowed_ips"), "{err}");
    }
}
