//! Delivering the requests a plugin returned.
//!
//! Every delivery is authorized by its plugin's grants before it is sent
//! ([`guard`]): a [`Deliverer`] cannot be built without its guard.
//!
//! Which answers are worth a retry is explicit: network errors, timeouts,
//! and by default 408, 425, 429 and 5xx (a destination's policy may say
//! otherwise, see [`super::policy`]). Anything else (a 4xx) will not get
//! better by itself and is dead-lettered with the destination's answer.

pub mod guard;

use std::sync::Arc;
use std::time::Duration;

use fieldhook_capabilities::outbound::Refused;
use fieldhook_core::decision::Outbound;
use fieldhook_core::task::DeliveryPayload;
use fieldhook_core::text::escape_controls as esc;
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

pub use guard::DeliveryGuard;

/// How outbound requests returned by plugins are delivered: the
/// `[delivery]` section (per-destination `[[destinations]]` policies
/// override the attempts and backoff, see [`crate::policy`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Per-request timeout, seconds.
    pub timeout_secs: u64,
    /// Attempts per delivery before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry, milliseconds (doubles each attempt).
    pub retry_base_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            timeout_secs: 10,
            max_attempts: 2,
            retry_base_ms: 1_000,
        }
    }
}

/// Longest `Retry-After` honoured, ms; longer waits use the normal backoff
/// cap instead of parking the delivery for hours.
const MAX_RETRY_AFTER_MS: u64 = 300_000;
/// Largest body of one request a plugin returns; a larger one fails the
/// job instead of filling the queue.
pub const MAX_DELIVERY_BODY_BYTES: usize = 10 * 1024 * 1024;
/// How much of a failing answer's body is kept in the reason.
const REASON_BODY_BYTES: usize = 512;

/// What happened to one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The destination accepted it (2xx).
    Ok(u16),
    /// Worth another try, after `retry_after_ms` when the destination said.
    Retryable {
        /// What failed.
        reason: String,
        /// The destination's `Retry-After`, when given.
        retry_after_ms: Option<u64>,
    },
    /// Will not succeed by retrying.
    Permanent(String),
}

fn client(settings: &DeliverySettings) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.timeout_secs))
        .user_agent(concat!("fieldhook/", env!("CARGO_PKG_VERSION")))
        // A redirect could lead anywhere; the destination is the URL the
        // plugin named, nothing else.
        .redirect(reqwest::redirect::Policy::none())
}

/// Sends deliveries with one shared HTTP client.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    settings: DeliverySettings,
    guard: DeliveryGuard,
}

impl Deliverer {
    /// A deliverer with the configured timeout that checks every delivery
    /// against its plugin's grants and adds the credentials its rule names
    /// (`guard`); it connects only to the addresses the check approved.
    pub fn new(settings: DeliverySettings, guard: DeliveryGuard) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: client(&settings)
                .dns_resolver(Arc::new(guard.checked_addrs()))
                .build()?,
            settings,
            guard,
        })
    }

    /// How long a delivery lease lasts: longer than one send can take.
    pub fn lease_ms(&self) -> u64 {
        self.settings
            .timeout_secs
            .saturating_mul(1000)
            .saturating_add(30_000)
    }

    /// Sends one delivery: authorized and decorated by the guard, once more
    /// with fresh credentials after a 401; `retryable` says which failing
    /// statuses are worth another try (the destination's policy).
    pub async fn send(
        &self,
        d: &DeliveryPayload,
        retryable: &(dyn Fn(u16) -> bool + Sync),
    ) -> Sent {
        let guard = &self.guard;
        let auth = match guard.authorize(d).await {
            Ok(a) => a,
            Err(refused) => return refusal(refused),
        };
        let (sent, status) = self.send_once(d, &auth, retryable).await;
        if status == Some(401) && guard.rejected(&auth).await {
            return match guard.authorize(d).await {
                Ok(fresh) => self.send_once(d, &fresh, retryable).await.0,
                Err(refused) => refusal(refused),
            };
        }
        sent
    }

    async fn send_once(
        &self,
        d: &DeliveryPayload,
        auth: &guard::DeliveryAuth,
        retryable: &(dyn Fn(u16) -> bool + Sync),
    ) -> (Sent, Option<u16>) {
        let r = &d.request;
        let method = match Method::from_bytes(r.method.as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                return (
                    Sent::Permanent(format!("invalid method `{}`", esc(&r.method))),
                    None,
                );
            }
        };
        // The URL the guard checked, not the plugin's text.
        let mut req = self.client.request(method, &auth.url).body(r.body.clone());
        for (name, value) in &r.headers {
            let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) else {
                return (
                    Sent::Permanent(format!("invalid header `{}`", esc(name))),
                    None,
                );
            };
            req = req.header(n, v);
        }
        for (n, v) in &auth.headers {
            req = req.header(n.clone(), v.clone());
        }
        req = req.header("idempotency-key", &d.idempotency_key);
        let sent = match req.send().await {
            Err(e) => Sent::Retryable {
                reason: format!(
                    "{}: {e}",
                    if e.is_timeout() {
                        "timed out"
                    } else {
                        "network error"
                    }
                ),
                retry_after_ms: None,
            },
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return (Sent::Ok(status.as_u16()), Some(status.as_u16()));
                }
                let retry_after_ms = resp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    // From the network: never let it overflow.
                    .map(|secs| secs.saturating_mul(1000).min(MAX_RETRY_AFTER_MS));
                let body = resp.bytes().await.unwrap_or_default();
                // One line in the log, whatever the destination answered.
                let snippet = esc(&String::from_utf8_lossy(
                    &body[..body.len().min(REASON_BODY_BYTES)],
                ))
                .into_owned();
                let reason = format!("destination answered HTTP {}: {snippet}", status.as_u16());
                let sent = if retryable(status.as_u16()) {
                    Sent::Retryable {
                        reason,
                        retry_after_ms,
                    }
                } else {
                    Sent::Permanent(reason)
                };
                return (sent, Some(status.as_u16()));
            }
        };
        (sent, None)
    }
}

fn refusal(refused: Refused) -> Sent {
    match refused {
        Refused::Denied(reason) => Sent::Permanent(format!("refused by the host: {reason}")),
        Refused::Unavailable(reason) => Sent::Retryable {
            reason: format!("not sent: {reason}"),
            retry_after_ms: None,
        },
    }
}

/// Statuses that may succeed later.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..=599).contains(&status)
}

/// Checks a plugin's request before it is queued, so a bad one fails the
/// job with a reason instead of failing every delivery attempt. What the
/// reason quotes of the request is escaped: it goes to the daemon's log.
pub fn validate(r: &Outbound) -> Result<(), String> {
    Method::from_bytes(r.method.as_bytes())
        .map_err(|_| format!("invalid method `{}`", esc(&r.method)))?;
    let uri: http::Uri = r
        .url
        .parse()
        .map_err(|e| format!("invalid URL `{}`: {e}", esc(&r.url)))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "URL `{}` must be absolute http or https",
                esc(&r.url)
            ));
        }
    }
    if uri.host().is_none() {
        return Err(format!("URL `{}` has no host", esc(&r.url)));
    }
    // User info, and paths with no safe reading, are refused as the guard
    // refuses them: better the job fails with the reason than every
    // attempt.
    fieldhook_policy::grants::Target::from_uri(&r.method, &uri).map_err(|d| d.to_string())?;
    if r.body.len() > MAX_DELIVERY_BODY_BYTES {
        return Err(format!(
            "body of {} bytes is over the {MAX_DELIVERY_BODY_BYTES}-byte limit per delivery",
            r.body.len()
        ));
    }
    for (name, value) in &r.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{}`", esc(name)))?;
        if n == http::header::AUTHORIZATION
            || n == http::header::PROXY_AUTHORIZATION
            || n == http::header::COOKIE
        {
            return Err(format!(
                "plugins may not set `{name}`; name a credential in the [[http]] rule and the host adds it"
            ));
        }
        if n == http::header::HOST {
            return Err(
                "plugins may not set `Host`; the host sends the URL's (another virtual host is another destination)"
                    .into(),
            );
        }
        HeaderValue::from_bytes(value).map_err(|_| format!("invalid value for header `{name}`"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str) -> Outbound {
        Outbound {
            method: method.into(),
            url: url.into(),
            headers: vec![],
            body: vec![],
            idempotency_key: None,
        }
    }

    #[test]
    fn retries_are_for_timeouts_throttling_and_server_errors_only() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn what_a_refused_request_quotes_of_the_plugin_is_one_line() {
        let e = validate(&request(
            "POST\nINFO fieldhook::admin: admin token accepted",
            "https://x/",
        ))
        .unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("POST\\nINFO"), "{e}");
        let e = validate(&request("POST", "https://x/\r\u{1b}[2Jy")).unwrap_err();
        assert!(!e.contains(['\r', '\u{1b}']), "{e}");
    }

    #[test]
    fn a_request_needs_a_valid_method_and_an_absolute_http_url() {
        assert!(validate(&request("POST", "https://books.example.com/jobs")).is_ok());
        assert!(validate(&request("P OST", "https://x")).is_err());
        assert!(validate(&request("POST", "/relative")).is_err());
        assert!(validate(&request("POST", "ftp://x/y")).is_err());
    }

    #[test]
    fn a_delivery_cannot_pick_its_own_host_header() {
        let mut r = request("POST", "https://books.example.com/jobs");
        r.headers
            .push(("Host".into(), b"admin.books.example.com".to_vec()));
        assert!(validate(&r).unwrap_err().contains("Host"));
    }

    #[test]
    fn a_delivery_url_with_user_info_is_refused() {
        let r = request("POST", "https://user:pw@books.example.com/jobs");
        assert!(validate(&r).unwrap_err().contains("user info"));
    }

    #[test]
    fn a_delivery_path_with_no_safe_reading_is_refused() {
        for url in [
            "https://books.example.com/api/..%2Finternal",
            "https://books.example.com/api/..%5Cinternal",
        ] {
            assert!(validate(&request("POST", url)).is_err(), "{url}");
        }
    }

    #[test]
    fn a_plugin_cannot_set_its_own_authorization() {
        let mut r = request("POST", "https://books.example.com/jobs");
        r.headers
            .push(("Authorization".into(), b"Bearer stolen".to_vec()));
        assert!(validate(&r).unwrap_err().contains("credential"));
    }
}
