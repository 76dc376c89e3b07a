//! Vendor verifiers: check a webhook's raw bytes, answer handshakes, and
//! normalize what the vendor sent (kind, entity, dedupe key).
//!
//! This crate is free of the HTTP server and of the store: bytes in, verdict
//! out, so every vendor's rules are unit-testable on plain bytes. The
//! daemon's ingress calls [`Vendor::check`] and turns the [`Verdict`] or
//! [`Rejection`] into a response, with the status code from
//! [`Vendor::status_for`] when something fails.
//!
//! - [`build`] turns a `[[sources]]` block (vendor name, secrets, options)
//!   into a verifier; [`NAMES`] lists the vendor names it knows.
//! - [`explain`] / [`explain_with`] run one request through a verifier and
//!   say, line by line, what was checked (the `fieldhook verify` debugger).
//!
//! One file per vendor; `signature` holds the shared HMAC, constant-time,
//! encoding, timestamp and header helpers, `payload` the JSON/form helpers.
//! Each vendor's page in `docs/vendors/` describes its options.
#![deny(missing_docs)]

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde::Deserialize;

/// A signing key, URL token or password, as the configuration loaded it.
pub use fieldhook_core::secret::Secret;

mod generic_hmac;
mod housecall_pro;
mod ip_allowlist;
mod jobber;
mod payload;
mod servicem8;
mod servicetitan;
mod servicetrade;
mod shared_secret;
mod signature;
mod standard_webhooks;

/// Every vendor name accepted by [`build`] (the `vendor = "..."` of a source).
pub const NAMES: &[&str] = &[
    "standard-webhooks",
    "hmac",
    "housecall-pro",
    "jobber",
    "servicetitan",
    "servicem8",
    "servicetrade",
    "basic-auth",
    "api-key",
];

/// A request as the verifier sees it: raw bytes, never re-serialised.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Request headers as received.
    pub headers: &'a HeaderMap,
    /// Raw body bytes.
    pub body: &'a [u8],
    /// The `{token}` of `/hooks/{source}/{token}`, when the URL has one.
    pub path_token: Option<&'a str>,
    /// Current time, Unix seconds (injected so tests can use old vectors).
    pub now: i64,
    /// Address of the TCP peer, when known (checked against `allowed_ips`).
    pub peer: Option<IpAddr>,
}

impl Inbound<'_> {
    /// Current time as Unix seconds.
    pub fn now_unix() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// The record an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    /// Vendor's entity type, lower case (`job`, `invoice`).
    pub kind: String,
    /// Vendor's id of the entity.
    pub id: String,
    /// Where the full record can be fetched, when given.
    pub url: Option<String>,
}

/// What the vendor's payload says, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// `<entity>.<change>`, e.g. `job.completed`; `unknown` when not given.
    pub kind: String,
    /// The entity, when known.
    pub entity: Option<EntityRef>,
    /// Vendor's own occurred-at text, when given.
    pub occurred_at: Option<String>,
    /// Dedupe key (vendor id, or the composite key), when one can be built.
    pub dedupe_key: Option<String>,
    /// False when the body is not the JSON the vendor documents (the raw bytes
    /// are still stored and delivered; nothing is dropped).
    pub parsed: bool,
}

/// An accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// One or more events to store (ServiceTrade batches several entities in
    /// one message: one event each). The raw body is stored with each.
    Events(Vec<Normalized>),
    /// A handshake to answer as given and not store.
    Handshake {
        /// HTTP status to answer with.
        status: u16,
        /// `Content-Type` of the answer.
        content_type: &'static str,
        /// Exact answer body.
        body: Vec<u8>,
    },
}

/// Why a request was refused. The message names what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A required header is absent.
    #[error("missing header `{0}`")]
    MissingHeader(String),
    /// A header is present but unusable (not UTF-8, not a number, repeated).
    #[error("malformed header `{name}`: {why}")]
    MalformedHeader {
        /// Header name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// No signature matched any configured secret.
    #[error("signature mismatch: {0}")]
    BadSignature(String),
    /// The signed timestamp is outside the tolerance.
    #[error("timestamp {timestamp} is {skew}s away from now, tolerance is {tolerance}s")]
    StaleTimestamp {
        /// The signed timestamp.
        timestamp: i64,
        /// Signed difference now - timestamp, seconds.
        skew: i64,
        /// Configured tolerance, seconds.
        tolerance: u64,
    },
    /// URL token absent or wrong.
    #[error("URL token missing or wrong")]
    BadToken,
    /// Basic auth / API-key header wrong.
    #[error("credentials rejected: {0}")]
    BadCredentials(String),
    /// The peer address is outside the source's `allowed_ips`.
    #[error("peer address {0} is not in allowed_ips")]
    PeerNotAllowed(String),
}

/// A configured vendor verifier.
pub trait Vendor: Send + Sync + std::fmt::Debug {
    /// Vendor name as used in config and shown to plugins (`housecall-pro`).
    fn name(&self) -> &'static str;
    /// Verify and normalize one request.
    fn check(&self, req: &Inbound<'_>) -> Result<Verdict, Rejection>;
    /// [`Vendor::check`], writing each step into `trace` (which headers were
    /// read, which encodings and secrets were tried, the timestamp skew).
    /// Used by [`explain`]; the result is the same as `check`'s. The
    /// default only records the result.
    fn check_traced(&self, req: &Inbound<'_>, trace: &mut Trace) -> Result<Verdict, Rejection> {
        let result = self.check(req);
        if let Err(rejection) = &result {
            trace.note(|| format!("rejected: {rejection}"));
        }
        result
    }
    /// Sign `body` as the vendor would send it, with the first (current)
    /// secret and `now` as the signing time: the headers to send and, for
    /// URL-token vendors, the token to put in the URL. Used by
    /// `fieldhook send` to replay a sample against a running daemon. `None`
    /// when the vendor cannot be imitated (the default).
    fn sign_sample(&self, body: &[u8], now: i64) -> Option<SignedSample> {
        let _ = (body, now);
        None
    }
    /// HTTP status to answer when `failure` happens. The default is 401 for
    /// a rejected request, 413 for a body over the limit, 503 when the
    /// store is unavailable and 408 when the body did not arrive in time;
    /// vendors that read some codes as "delivered" or "unsubscribe me"
    /// override it (ServiceTrade, ServiceM8).
    fn status_for(&self, failure: Failure) -> u16 {
        match failure {
            Failure::Rejected => 401,
            Failure::TooLarge => 413,
            Failure::StoreUnavailable => 503,
            Failure::TimedOut => 408,
        }
    }
}

/// A sample request signed as a vendor would sign it ([`Vendor::sign_sample`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSample {
    /// Headers to send, `(name, value)`, in order.
    pub headers: Vec<(String, String)>,
    /// The `{token}` of `/hooks/{source}/{token}`, for vendors that
    /// authenticate by URL token.
    pub path_token: Option<String>,
}

impl SignedSample {
    /// A sample with these headers and no URL token.
    fn with_headers(headers: Vec<(String, String)>) -> Self {
        SignedSample {
            headers,
            path_token: None,
        }
    }
}

/// Step-by-step notes of one verification, for humans ([`explain`]).
///
/// Off on the request path: [`Trace::note`] takes a closure, so a trace that
/// is off costs nothing (no formatting, no allocation).
#[derive(Debug, Default)]
pub struct Trace {
    lines: Option<Vec<String>>,
}

impl Trace {
    /// A trace that records nothing (the request path).
    pub fn off() -> Self {
        Trace { lines: None }
    }

    /// A trace that records every note.
    pub fn on() -> Self {
        Trace {
            lines: Some(Vec::new()),
        }
    }

    /// Whether notes are recorded.
    pub fn is_on(&self) -> bool {
        self.lines.is_some()
    }

    /// Record the line `line()` returns, when the trace is on.
    pub fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(lines) = &mut self.lines {
            lines.push(line());
        }
    }

    /// The recorded lines, in order.
    pub fn into_lines(self) -> Vec<String> {
        self.lines.unwrap_or_default()
    }
}

/// Failures the ingress must answer; each vendor decides the status code,
/// because several vendors read some 4xx as "delivered" or "unsubscribe me".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// [`Vendor::check`] returned a [`Rejection`].
    Rejected,
    /// The body is over the configured limit.
    TooLarge,
    /// The event could not be made durable.
    StoreUnavailable,
    /// The body did not arrive within the read timeout.
    TimedOut,
}

/// A source's vendor block could not be turned into a verifier.
#[derive(Debug, thiserror::Error)]
pub enum VendorConfigError {
    /// `vendor = "..."` names no known vendor.
    #[error("unknown vendor `{0}`; known vendors: {known}", known = NAMES.join(", "))]
    UnknownVendor(String),
    /// The options do not fit the vendor.
    #[error("vendor `{vendor}`: {message}")]
    Invalid {
        /// Vendor name.
        vendor: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Build the verifier for one source.
///
/// - `vendor`: one of [`NAMES`].
/// - `secrets`: the current secret and, during a rotation, the previous one;
///   a request is accepted when any of them verifies it. What the secret is
///   depends on the vendor: the signing key (`hmac`, `standard-webhooks`,
///   `housecall-pro`, `jobber`, `servicetitan`), the URL token
///   (`servicem8`, `servicetrade`; for ServiceM8 add-on callbacks the app
///   secret), `user:password` (`basic-auth`) or the key (`api-key`).
///   Every vendor needs at least one, and none may be empty.
/// - `options`: the rest of the source's TOML block (without `name`,
///   `vendor` and the `secret_*` keys). Unknown keys are refused, with a
///   message that names the valid ones.
pub fn build(
    vendor: &str,
    secrets: Vec<Secret>,
    options: toml::Table,
) -> Result<Box<dyn Vendor>, VendorConfigError> {
    let Some(&name) = NAMES.iter().find(|n| **n == vendor) else {
        return Err(VendorConfigError::UnknownVendor(vendor.to_owned()));
    };
    if secrets.is_empty() {
        return Err(invalid(
            name,
            "no secret configured; add `secret_env = \"ENV_NAME\"` or `secret_file = \"path\"` to the source"
                .to_owned(),
        ));
    }
    if let Some(i) = secrets.iter().position(|s| s.expose().is_empty()) {
        return Err(invalid(
            name,
            format!(
                "{} is empty; check the environment variable or file it is read from",
                signature::secret_label(i)
            ),
        ));
    }
    let built: Box<dyn Vendor> = match name {
        "standard-webhooks" => Box::new(standard_webhooks::StandardWebhooks::build(
            secrets, options,
        )?),
        "hmac" => Box::new(generic_hmac::GenericHmac::build(secrets, options)?),
        "housecall-pro" => Box::new(housecall_pro::HousecallPro::build(secrets, options)?),
        "jobber" => Box::new(jobber::Jobber::build(secrets, options)?),
        "servicetitan" => Box::new(servicetitan::ServiceTitan::build(secrets, options)?),
        "servicem8" => Box::new(servicem8::ServiceM8::build(secrets, options)?),
        "servicetrade" => Box::new(servicetrade::ServiceTrade::build(secrets, options)?),
        "basic-auth" => Box::new(shared_secret::BasicAuth::build(secrets, options)?),
        "api-key" => Box::new(shared_secret::ApiKey::build(secrets, options)?),
        other => return Err(VendorConfigError::UnknownVendor(other.to_owned())),
    };
    Ok(built)
}

fn invalid(vendor: &'static str, message: String) -> VendorConfigError {
    VendorConfigError::Invalid { vendor, message }
}

/// Deserialize a vendor's options (structs use `deny_unknown_fields`), with
/// an error that says where to fix it.
fn parse_options<T: for<'de> Deserialize<'de>>(
    vendor: &'static str,
    options: toml::Table,
) -> Result<T, VendorConfigError> {
    toml::Value::Table(options).try_into().map_err(|e: toml::de::Error| {
        invalid(
            vendor,
            format!(
                "{} (fix this option in the source's [[sources]] block; every option of `{vendor}` is described in docs/vendors/{vendor}.md)",
                e.to_string().trim().replace('\n', " ")
            ),
        )
    })
}

/// The outcome of [`explain`]: what fieldhook would do with one request, and
/// why, in lines for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// True when the request verifies (events to store, or a handshake to
    /// answer).
    pub accepted: bool,
    /// The status fieldhook would answer (200 for events, once stored), or
    /// `None` when the source configuration itself is invalid.
    pub status: Option<u16>,
    /// The verdict, when accepted.
    pub verdict: Option<Verdict>,
    /// Why it was refused, when refused.
    pub rejection: Option<Rejection>,
    /// What was checked, step by step, ending with the outcome.
    pub lines: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Run one request through a freshly built verifier and explain the result:
/// the engine of `fieldhook verify --vendor V --secret S --header 'Name: value'
/// --body-file F [--token T] [--at UNIX]`.
///
/// `now` is the clock to judge timestamps by (pass [`Inbound::now_unix`] for
/// the real one, or the time a captured request was sent). The lines name the
/// headers received, each header read or found missing, the encodings,
/// header names and secrets tried, the computed signature (so a sender's bug
/// can be compared byte for byte), the timestamp skew against the tolerance,
/// and finally what was normalized (kind, entity, dedupe key) or why the
/// request was refused and with which status.
///
/// Secrets are never printed; computed signatures are, so show a report only
/// to the operator who holds the secret. A configuration error gives a
/// report with `status: None` and one line saying what to fix.
pub fn explain(
    vendor: &str,
    secrets: Vec<Secret>,
    options: toml::Table,
    headers: &HeaderMap,
    body: &[u8],
    path_token: Option<&str>,
    now: i64,
) -> Report {
    match build(vendor, secrets, options) {
        Err(e) => Report {
            accepted: false,
            status: None,
            verdict: None,
            rejection: None,
            lines: vec![format!("configuration error: {e}")],
        },
        Ok(built) => explain_with(
            built.as_ref(),
            &Inbound {
                headers,
                body,
                path_token,
                now,
                peer: None,
            },
        ),
    }
}

/// [`explain`] for a verifier that is already built (e.g. a configured
/// source, for an admin endpoint).
pub fn explain_with(vendor: &dyn Vendor, req: &Inbound<'_>) -> Report {
    let mut trace = Trace::on();
    trace.note(|| {
        let mut names: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        names.dedup();
        format!(
            "vendor `{}`: body {} bytes, URL token {}, clock {}{}; headers received: {}",
            vendor.name(),
            req.body.len(),
            if req.path_token.is_some() {
                "present"
            } else {
                "absent"
            },
            req.now,
            req.peer
                .map(|ip| format!(", peer {ip}"))
                .unwrap_or_default(),
            if names.is_empty() {
                "(none)".to_owned()
            } else {
                names.join(", ")
            },
        )
    });
    let result = vendor.check_traced(req, &mut trace);
    let mut lines = trace.into_lines();
    match result {
        Ok(verdict) => {
            let status = match &verdict {
                Verdict::Events(events) => {
                    lines.push(format!(
                        "ACCEPTED: {} event(s) to store; fieldhook answers 200 once they are durable",
                        events.len()
                    ));
                    for (i, event) in events.iter().enumerate() {
                        lines.push(format!("  event {}: {}", i + 1, describe_event(event)));
                    }
                    200
                }
                Verdict::Handshake {
                    status,
                    content_type,
                    body,
                } => {
                    lines.push(format!(
                        "HANDSHAKE: answer {status} ({content_type}) with body `{}`; nothing is stored",
                        signature::shorten(&String::from_utf8_lossy(body), 200)
                    ));
                    *status
                }
            };
            Report {
                accepted: true,
                status: Some(status),
                verdict: Some(verdict),
                rejection: None,
                lines,
            }
        }
        Err(rejection) => {
            let status = vendor.status_for(Failure::Rejected);
            lines.push(format!("REJECTED: {rejection}; fieldhook answers {status}"));
            Report {
                accepted: false,
                status: Some(status),
                verdict: None,
                rejection: Some(rejection),
                lines,
            }
        }
    }
}

fn describe_event(event: &Normalized) -> String {
    let entity = match &event.entity {
        Some(e) => format!(
            "{} {}{}",
            e.kind,
            e.id,
            e.url
                .as_ref()
                .map(|u| format!(" <{u}>"))
                .unwrap_or_default()
        ),
        None => "none".to_owned(),
    };
    format!(
        "kind `{}`, entity {entity}, occurred at {}, dedupe key {}{}",
        event.kind,
        event.occurred_at.as_deref().unwrap_or("not given"),
        event
            .dedupe_key
            .as_ref()
            .map(|k| format!("`{k}`"))
            .unwrap_or_else(|| "none (every delivery is stored)".to_owned()),
        if event.parsed {
            ""
        } else {
            " (body not parsed: stored as is)"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("test TOML")
    }

    fn secret(s: &str) -> Vec<Secret> {
        vec![Secret::new(s.as_bytes().to_vec())]
    }

    #[test]
    fn every_listed_name_builds_with_a_secret_and_default_options() {
        for name in NAMES {
            let s = if *name == "basic-auth" {
                "user:pass"
            } else {
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            };
            let built = build(name, secret(s), toml::Table::new());
            let built = built.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(built.name(), *name);
        }
    }

    #[test]
    fn an_unknown_vendor_is_refused_with_the_list_of_known_ones() {
        let err = build("housecall_pro", secret("x"), toml::Table::new()).expect_err("unknown");
        let text = err.to_string();
        assert!(
            text.contains("housecall_pro") && text.contains("housecall-pro"),
            "{text}"
        );
    }

    #[test]
    fn every_vendor_needs_at_least_one_non_empty_secret() {
        for name in NAMES {
            let err = build(name, Vec::new(), toml::Table::new()).expect_err("no secret");
            assert!(err.to_string().contains("secret_env"), "{name}: {err}");
            let err =
                build(name, vec![Secret::new(Vec::new())], toml::Table::new()).expect_err("empty");
            assert!(err.to_string().contains("empty"), "{name}: {err}");
        }
    }

    #[test]
    fn unknown_options_are_refused_for_every_vendor_with_a_pointer_to_the_docs() {
        for name in NAMES {
            let s = if *name == "basic-auth" {
                "user:pass"
            } else {
                "secret"
            };
            let err =
                build(name, secret(s), table("no_such_option = 1")).expect_err("unknown option");
            let text = err.to_string();
            assert!(text.contains("no_such_option"), "{name}: {text}");
            assert!(
                text.contains(&format!("docs/vendors/{name}.md")),
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn option_type_errors_name_the_option() {
        let err = build(
            "housecall-pro",
            secret("s"),
            table("tolerance_secs = \"5m\""),
        )
        .expect_err("type");
        assert!(err.to_string().contains("tolerance_secs"), "{err}");
    }

    #[test]
    fn default_status_codes_are_401_413_503_408() {
        let built = build("jobber", secret("s"), toml::Table::new()).expect("builds");
        assert_eq!(built.status_for(Failure::Rejected), 401);
        assert_eq!(built.status_for(Failure::TooLarge), 413);
        assert_eq!(built.status_for(Failure::StoreUnavailable), 503);
        assert_eq!(built.status_for(Failure::TimedOut), 408);
    }

    #[test]
    fn no_vendor_ever_answers_410_and_a_store_failure_is_always_5xx() {
        for name in NAMES {
            let s = if *name == "basic-auth" {
                "user:pass"
            } else {
                "secret"
            };
            let built = build(name, secret(s), toml::Table::new()).expect("builds");
            for failure in [
                Failure::Rejected,
                Failure::TooLarge,
                Failure::StoreUnavailable,
                Failure::TimedOut,
            ] {
                assert_ne!(built.status_for(failure), 410, "{name} {failure:?}");
            }
            assert!(built.status_for(Failure::StoreUnavailable) >= 500, "{name}");
        }
    }

    #[test]
    fn explain_names_the_missing_header_and_the_status() {
        let report = explain(
            "jobber",
            secret("s"),
            toml::Table::new(),
            &HeaderMap::new(),
            b"{}",
            None,
            0,
        );
        assert!(!report.accepted);
        assert_eq!(report.status, Some(401));
        assert_eq!(
            report.rejection,
            Some(Rejection::MissingHeader("X-Jobber-Hmac-SHA256".into()))
        );
        let text = report.to_string();
        assert!(text.contains("X-Jobber-Hmac-SHA256"), "{text}");
        assert!(text.contains("headers received: (none)"), "{text}");
    }

    #[test]
    fn explain_reports_a_configuration_error_without_a_status() {
        let report = explain(
            "nope",
            secret("s"),
            toml::Table::new(),
            &HeaderMap::new(),
            b"",
            None,
            0,
        );
        assert!(!report.accepted);
        assert_eq!(report.status, None);
        assert!(
            report.lines[0].starts_with("configuration error"),
            "{report}"
        );
    }

    #[test]
    fn explain_shows_skew_and_normalized_event_for_an_accepted_request() {
        // Housecall Pro public vector (docs/vendors.md), one second after signing.
        let mut headers = HeaderMap::new();
        headers.insert("api-timestamp", HeaderValue::from_static("1784871495"));
        headers.insert(
            "api-signature",
            HeaderValue::from_static(
                "a0e715e3aadf86b13003475fdd315d96034bb61ee2304dd415050d113c0d5d7e",
            ),
        );
        let body = br#"{"event":"customer.updated","event_occurred_at":"2026-07-24T05:38:14Z","company_id":"233b75f9-4b4f-4a83-b21b-c1ed9e571daa","customer":{"id":"cus_d8924aacf0d24a888280e12187e40f6f","first_name":"ZZ-Webhook","last_name":"Test-DELETE-ME"}}"#;
        let report = explain(
            "housecall-pro",
            secret("hcp_webhook_signing_secret_EXAMPLE"),
            toml::Table::new(),
            &headers,
            body,
            None,
            1784871496,
        );
        let text = report.to_string();
        assert!(report.accepted, "{text}");
        assert_eq!(report.status, Some(200));
        assert!(text.contains("1s old"), "{text}");
        assert!(text.contains("customer.updated"), "{text}");
        assert!(
            !text.contains("hcp_webhook_signing_secret_EXAMPLE"),
            "secret printed: {text}"
        );
    }

    /// Every vendor, with option sets that reach each code path.
    fn all_configured() -> Vec<Box<dyn Vendor>> {
        let configs: &[(&str, &[&str], &str)] = &[
            (
                "standard-webhooks",
                &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "raw"],
                "",
            ),
            (
                "standard-webhooks",
                &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "tolerance_secs = 0\nentity_id_field = \"/data/id\"",
            ),
            ("hmac", &["k1", "k2"], ""),
            (
                "hmac",
                &["k1"],
                "timestamp_header = \"X-Timestamp\"\nsigned_payload = \"v0:{timestamp}:{body}\"\nprefix = \"v0=\"",
            ),
            (
                "hmac",
                &["k1"],
                "algorithm = \"sha1\"\nencoding = \"base64\"\nprefix = \"sha1=\"\nkind_field = \"/a/b\"\nid_field = \"/id\"\nentity_id_field = \"/x\"\nentity_type_field = \"/t\"",
            ),
            ("housecall-pro", &["hcp_webhook_signing_secret_EXAMPLE"], ""),
            ("housecall-pro", &["a", "b"], "tolerance_secs = 0"),
            ("jobber", &["jobber_oauth_client_secret_EXAMPLE", "old"], ""),
            (
                "servicetitan",
                &["st-hmac-key-0123456789abcdef0123456789abcdef"],
                "",
            ),
            (
                "servicetitan",
                &["k"],
                "encoding = \"base64\"\nheaders = [\"X-Sig\"]",
            ),
            ("servicem8", &["tok", "tok2"], ""),
            ("servicetrade", &["tok"], ""),
            (
                "servicetrade",
                &["tok"],
                "allowed_ips = [\"127.0.0.0/8\", \"::1\"]",
            ),
            (
                "basic-auth",
                &["user:pass", "u2:p2"],
                "kind_field = \"/event\"",
            ),
            ("api-key", &["tok"], ""),
            (
                "api-key",
                &["tok"],
                "header = \"Authorization\"\nscheme = \"Bearer\"",
            ),
        ];
        configs
            .iter()
            .map(|(name, secrets, options)| testkit::build_with(name, secrets, options))
            .collect()
    }

    mod never_panics {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        const HEADER_NAMES: &[&str] = &[
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-id",
            "svix-timestamp",
            "svix-signature",
            "X-Signature",
            "X-Timestamp",
            "X-Sig",
            "Api-Signature",
            "Api-Timestamp",
            "X-Jobber-Hmac-SHA256",
            "X-ServiceTitan-Signature",
            "ServiceTitan-Signature",
            "X-ST-Signature",
            "Authorization",
            "X-API-Key",
            "Content-Type",
        ];

        const JSON_KEYS: &[&str] = &[
            "event",
            "type",
            "object",
            "data",
            "entry",
            "uuid",
            "time",
            "changed_fields",
            "resource_url",
            "webHookEvent",
            "topic",
            "itemId",
            "accountId",
            "occurredAt",
            "eventType",
            "eventId",
            "messageId",
            "entity",
            "id",
            "action",
            "timestamp",
            "uri",
            "eventName",
            "eventArgs",
            "company_id",
            "event_occurred_at",
            "customer",
            "job",
            "a",
            "b",
        ];

        fn header_name() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => proptest::sample::select(HEADER_NAMES).prop_map(str::to_owned),
                1 => "[a-z][a-z0-9-]{0,12}",
            ]
        }

        fn header_value() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                "[ -~]{0,60}".prop_map(String::into_bytes),
                "(v1|v2|v1a)?,[A-Za-z0-9+/=]{0,50}( v[0-9a],[A-Za-z0-9+/=]{0,50}){0,3}"
                    .prop_map(String::into_bytes),
                "[0-9]{0,22}".prop_map(String::into_bytes),
                "(sha256=|sha1=|v0=)?[0-9a-fA-F]{0,130}".prop_map(String::into_bytes),
                "(Basic|Bearer|basic) [A-Za-z0-9+/=:]{0,40}".prop_map(String::into_bytes),
                vec(any::<u8>(), 0..40),
            ]
        }

        fn json() -> impl Strategy<Value = serde_json::Value> {
            use serde_json::Value;
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "[ -~]{0,20}".prop_map(Value::String),
                proptest::sample::select(JSON_KEYS)
                    .prop_map(|k| Value::String(format!("{k}.updated"))),
            ];
            leaf.prop_recursive(5, 48, 6, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..5).prop_map(Value::Array),
                    vec((proptest::sample::select(JSON_KEYS), inner), 0..6).prop_map(|pairs| {
                        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                    }),
                ]
            })
        }

        fn body() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                vec(any::<u8>(), 0..300),
                json().prop_map(|v| v.to_string().into_bytes()),
                "([a-z\\[\\]0-9%+]{0,12}=[a-zA-Z0-9%+\\[\\]{}\":,]{0,30}&?){0,6}"
                    .prop_map(String::into_bytes),
                "[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,80}\\.[A-Za-z0-9_=-]{0,44}"
                    .prop_map(String::into_bytes),
                "mode=subscribe&challenge=[ -~]{0,20}".prop_map(String::into_bytes),
            ]
        }

        fn headers() -> impl Strategy<Value = HeaderMap> {
            vec((header_name(), header_value()), 0..8).prop_map(|pairs| {
                let mut map = HeaderMap::new();
                for (name, value) in pairs {
                    if let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(name.as_bytes()),
                        http::HeaderValue::from_bytes(&value),
                    ) {
                        map.append(name, value);
                    }
                }
                map
            })
        }

        proptest! {
            // 512 cases unless PROPTEST_CASES says otherwise (e.g. a long soak run).
            #![proptest_config(ProptestConfig::with_cases(
                std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
            ))]

            /// `check` and `explain_with` return (never panic) for any
            /// headers, body, URL token and clock, on every vendor.
            #[test]
            fn check_never_panics_for_any_input_on_any_vendor(
                headers in headers(),
                body in body(),
                token in proptest::option::of(prop_oneof!["[ -~]{0,20}", Just("tok".to_owned())]),
                now in prop_oneof![any::<i64>(), Just(1_700_000_000i64)],
            ) {
                for vendor in all_configured() {
                    let req = Inbound { headers: &headers, body: &body, path_token: token.as_deref(), now, peer: None };
                    let checked = vendor.check(&req);
                    let report = explain_with(vendor.as_ref(), &req);
                    prop_assert_eq!(report.accepted, checked.is_ok(), "{}: explain and check disagree", vendor.name());
                    if let Ok(Verdict::Events(events)) = &checked {
                        prop_assert!(!events.is_empty(), "{}: accepted with no event", vendor.name());
                    }
                }
            }

            /// URL-token vendors refuse any token that is not a configured secret.
            #[test]
            fn a_url_token_other_than_the_secret_is_always_rejected(token in "[ -~]{0,40}", body in body()) {
                prop_assume!(token != "tok");
                let vendor = testkit::build_with("servicetrade", &["tok"], "");
                let headers = HeaderMap::new();
                let req = Inbound { headers: &headers, body: &body, path_token: Some(&token), now: 0, peer: None };
                prop_assert_eq!(vendor.check(&req), Err(Rejection::BadToken));
            }
        }
    }

    #[test]
    fn every_vendor_can_sign_a_sample_that_it_then_accepts() {
        let body = br#"{"event":"job.updated","type":"job.updated","data":{"id":1}}"#;
        for vendor in all_configured() {
            let sample = vendor
                .sign_sample(body, 1_700_000_000)
                .unwrap_or_else(|| panic!("{}: no sample", vendor.name()));
            let pairs: Vec<(&str, &str)> = sample
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let headers = testkit::headers(&pairs);
            let mut req = testkit::req(&headers, body, sample.path_token.as_deref(), 1_700_000_000);
            // Inside the `allowed_ips` of the configurations that set one.
            req.peer = Some(IpAddr::from([127, 0, 0, 1]));
            let result = vendor.check(&req);
            assert!(
                matches!(result, Ok(Verdict::Events(_))),
                "{}: {result:?}",
                vendor.name()
            );
        }
    }

    #[test]
    fn trace_off_records_nothing_and_never_runs_the_closure() {
        let mut trace = Trace::off();
        trace.note(|| panic!("formatted while off"));
        assert!(!trace.is_on());
        assert!(trace.into_lines().is_empty());
    }
}

/// Helpers shared by the vendors' tests.
#[cfg(test)]
mod testkit {
    use super::*;
    use http::{HeaderName, HeaderValue};

    /// Headers from `(name, value)` pairs; a name given twice is sent twice.
    pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
            let value = HeaderValue::from_str(value).expect("test header value");
            map.append(name, value);
        }
        map
    }

    /// An inbound request.
    pub(super) fn req<'a>(
        headers: &'a HeaderMap,
        body: &'a [u8],
        path_token: Option<&'a str>,
        now: i64,
    ) -> Inbound<'a> {
        Inbound {
            headers,
            body,
            path_token,
            now,
            peer: None,
        }
    }

    /// Build `vendor` with text secrets and TOML options; panics on error.
    pub(super) fn build_with(vendor: &str, secrets: &[&str], options: &str) -> Box<dyn Vendor> {
        let options: toml::Table = toml::from_str(options).expect("test TOML");
        let secrets = secrets
            .iter()
            .map(|s| Secret::new(s.as_bytes().to_vec()))
            .collect();
        build(vendor, secrets, options).unwrap_or_else(|e| panic!("{vendor}: {e}"))
    }

    /// The events of an accepted request; panics otherwise.
    pub(super) fn events(result: Result<Verdict, Rejection>) -> Vec<Normalized> {
        match result {
            Ok(Verdict::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// The only event of an accepted request; panics otherwise.
    pub(super) fn one_event(result: Result<Verdict, Rejection>) -> Normalized {
        let mut all = events(result);
        assert_eq!(all.len(), 1, "expected one event: {all:?}");
        all.remove(0)
    }
}
