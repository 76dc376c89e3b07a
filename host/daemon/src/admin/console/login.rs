//! Signing in with the admin token, and out.

use std::sync::Arc;

use axum::extract::State;
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
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Response {
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
        tracing::warn!("console sign-in with a wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not the admin token.")),
        )
            .into_response();
    }
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
