//! Signing in with the admin token, and out.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::session::{self, Session};
use super::{Console, bare_page};

/// The login form's path.
pub const PATH: &str = "/console/login";

/// Wrong tokens one client address may send within [`FAILURE_WINDOW`];
/// after that every sign-in from it is answered 429 until the oldest of
/// them is a window old.
pub const MAX_FAILURES: usize = 5;
/// See [`MAX_FAILURES`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses kept before those without a recent failure are dropped.
const PRUNE_ABOVE: usize = 1_024;

/// Recent wrong tokens by client address (memory only).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// How long `ip` must wait before it may try again, if it must.
    pub fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let recent = map.get_mut(&ip)?;
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= FAILURE_WINDOW)
        {
            recent.pop_front();
        }
        match recent.front() {
            None => {
                map.remove(&ip);
                None
            }
            Some(oldest) if recent.len() >= MAX_FAILURES => {
                Some(FAILURE_WINDOW.saturating_sub(now.saturating_duration_since(*oldest)))
            }
            Some(_) => None,
        }
    }

    /// Counts a wrong token from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, recent| {
                recent
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < FAILURE_WINDOW)
            });
        }
        let recent = map.entry(ip).or_default();
        recent.push_back(now);
        if recent.len() > MAX_FAILURES {
            recent.pop_front();
        }
    }

    /// The right token from `ip`: its count starts again.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

/// `GET /console/login`.
pub async fn form() -> Markup {
    login_page(None)
}

fn login_page(problem: Option<&str>) -> Markup {
    bare_page(
        "Sign in",
        html! {
            form.login method="post" action=(PATH) {
                @if let Some(problem) = problem {
                    p.error { (problem) }
                }
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.hint { "The token of " code { "[admin]" } " in fieldhook.toml (" code { "token_file" } " or " code { "token_env" } ")." }
        },
    )
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /console/login`: a session for the right token.
pub async fn submit(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Response {
    // The listener always gives the peer; without it all share one count.
    let client = peer.map_or(
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        |Extension(ConnectInfo(a))| a.ip(),
    );
    let now = Instant::now();
    // Checked before the token: once limited, even the right one waits.
    if let Some(wait) = c.logins.wait(client, now) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        tracing::warn!(%client, "console sign-in refused: too many wrong tokens");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            login_page(Some(&format!(
                "Too many wrong tokens from your address: try again in {secs} s."
            ))),
        )
            .into_response();
    }
    // Login CSRF: another site must not sign a browser in.
    if !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            login_page(Some("this form was sent from another site")),
        )
            .into_response();
    }
    let given = login.token.trim();
    if !bool::from(given.as_bytes().ct_eq(c.admin.token.as_bytes())) {
        c.logins.failed(client, now);
        tracing::warn!(%client, "console sign-in with a wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not the admin token.")),
        )
            .into_response();
    }
    c.logins.succeeded(client);
    let id = c.sessions.create();
    (
        [(
            header::SET_COOKIE,
            session::set_cookie(&id, session::LIFETIME),
        )],
        Redirect::to("/console"),
    )
        .into_response()
}

/// `POST /console/logout`.
pub async fn logout(
    State(c): State<Arc<Console>>,
    Extension(_session): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = session::cookie_value(&headers) {
        c.sessions.remove(id);
    }
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to(PATH),
    )
        .into_response()
}

/// False when the browser says the request came from another site:
/// `Sec-Fetch-Site` when it sends one (every current browser does), else an
/// `Origin` that is not this host. A client that sends neither is not a
/// browser another site can steer; it still needs the session cookie and
/// the CSRF token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none`: the operator typed the URL or used a bookmark.
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn five_wrong_tokens_a_minute_make_an_address_wait_until_the_oldest_is_a_minute_old() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES as u64 {
            assert_eq!(limiter.wait(ip, t0), None, "attempt {}", i + 1);
            limiter.failed(ip, t0 + Duration::from_secs(i));
        }
        let at = t0 + Duration::from_secs(10);
        assert_eq!(limiter.wait(ip, at), Some(Duration::from_secs(50)));
        assert_eq!(limiter.wait(other, at), None, "per address");
        // The oldest failure leaves the window: one more try.
        assert_eq!(limiter.wait(ip, t0 + FAILURE_WINDOW), None);
        limiter.failed(ip, t0 + FAILURE_WINDOW);
        assert!(limiter.wait(ip, t0 + FAILURE_WINDOW).is_some());
        // All of them a minute old: it clears.
        assert_eq!(limiter.wait(ip, t0 + FAILURE_WINDOW * 3), None);
        limiter.failed(other, t0);
        limiter.succeeded(other);
        assert_eq!(limiter.wait(other, t0), None);
    }

    #[test]
    fn a_form_from_another_origin_is_not_same_origin() {
        assert!(same_origin(&headers(&[])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&headers(&[("origin", "null")])));
        assert!(
            same_origin(&headers(&[
                ("origin", "null"),
                ("sec-fetch-site", "same-origin")
            ])),
            "the browser's own word wins over an opaque origin"
        );
    }
}
