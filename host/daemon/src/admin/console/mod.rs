//! The operator console: server-rendered HTML on the admin listener, under
//! `/console`, behind the admin token.
//!
//! | route                              | page                                   |
//! |------------------------------------|----------------------------------------|
//! | `GET/POST /console/login`, `POST /console/logout` | [`login`]               |
//! | `GET /console`                     | [`overview`]                           |
//! | `GET /console/events[/rows]`       | [`events`]: filtered, paged, polled    |
//! | `GET /console/events/{id}`, `POST .../replay` | [`event`]                   |
//! | `GET /console/dlq`, `GET/POST /console/dlq/replay` | [`dlq`]                |
//! | `GET /console/plugins`             | [`plugins`]                            |
//! | `GET /console/destinations`        | [`destinations`]                       |
//! | `GET /console/static/*`            | htmx and the stylesheet, from the binary |
//!
//! Event bodies and headers come from the internet: every page is a maud
//! template (escaped by default), served with a Content-Security-Policy
//! that allows no inline script or style. Reading works without
//! JavaScript; htmx only refreshes the event list in place.

pub mod destinations;
pub mod dlq;
pub mod event;
pub mod events;
pub mod format;
pub mod login;
pub mod overview;
pub mod plugins;
pub mod schedules;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

use super::{AdminError, AdminState};
use session::{Session, Sessions};

/// The console's state: the admin API's, and the signed-in sessions.
pub struct Console {
    /// What the admin API serves from.
    pub admin: Arc<AdminState>,
    /// Signed-in operators.
    pub sessions: Sessions,
    /// Wrong tokens by client address.
    pub logins: login::LoginLimiter,
}

/// htmx, vendored from the npm package `htmx.org` (BSD Zero Clause; see
/// static/htmx-LICENSE). The version is in the URL, so it is cached for a year.
const HTMX: &[u8] = include_bytes!("static/htmx-2.0.11.min.js");
const HTMX_PATH: &str = "/console/static/htmx-2.0.11.min.js";
const CSS: &str = include_str!("static/console.css");
/// Changes when the stylesheet does, so the long cache never serves a stale one.
const CSS_PATH: &str = concat!(
    "/console/static/console-",
    env!("CARGO_PKG_VERSION"),
    ".css"
);

/// No inline script or style, nothing from elsewhere, never in a frame.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes, ready to merge into the admin router.
pub fn router(admin: Arc<AdminState>) -> Router {
    let console = Arc::new(Console {
        admin,
        sessions: Sessions::new(session::LIFETIME),
        logins: login::LoginLimiter::default(),
    });
    let signed_in = Router::new()
        .route("/console", get(overview::page))
        .route("/console/events", get(events::page))
        .route("/console/events/rows", get(events::rows))
        .route("/console/events/{id}", get(event::page))
        .route("/console/events/{id}/replay", post(event::replay))
        .route("/console/dlq", get(dlq::page))
        .route("/console/dlq/replay", get(dlq::confirm).post(dlq::replay))
        .route("/console/plugins", get(plugins::page))
        .route("/console/destinations", get(destinations::page))
        .route("/console/schedules", get(schedules::page))
        .route("/console/logout", post(login::logout))
        // Runs second: the session is known, so the form's token can be checked.
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            check_csrf,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            require_session,
        ));
    Router::new()
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route(HTMX_PATH, get(htmx))
        .route(CSS_PATH, get(css))
        .merge(signed_in)
        .with_state(console)
        .layer(axum::middleware::from_fn(security_headers))
}

async fn htmx() -> Response {
    static_asset("text/javascript; charset=utf-8", Body::from(HTMX))
}

async fn css() -> Response {
    static_asset("text/css; charset=utf-8", Body::from(CSS))
}

fn static_asset(content_type: &'static str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// Headers on every console answer: the pages show hostile input.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // URLs do not leave the console; `same-origin` rather than
    // `no-referrer`, which would make the browser send `Origin: null` with
    // the console's own forms.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Sends a visitor without a live session to the login form; htmx polls
/// are told to load it as a whole page instead of into a table.
async fn require_session(State(c): State<Arc<Console>>, mut req: Request, next: Next) -> Response {
    let session = session::cookie_value(req.headers()).and_then(|id| c.sessions.get(id));
    match session {
        Some(session) => {
            req.extensions_mut().insert(session);
            next.run(req).await
        }
        None if req.headers().contains_key("hx-request") => (
            StatusCode::UNAUTHORIZED,
            [("hx-redirect", login::PATH)],
            "sign in again",
        )
            .into_response(),
        None => Redirect::to(login::PATH).into_response(),
    }
}

/// Most bytes a console form may hold.
const MAX_FORM: usize = 64 * 1024;

/// Every change (any method but GET and HEAD) must carry the session's CSRF
/// token as the `csrf` form field, and must not come from another origin.
async fn check_csrf(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    if !login::same_origin(req.headers()) {
        return refused("this form was sent from another site");
    }
    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return Redirect::to(login::PATH).into_response();
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return refused("the form is too large");
    };
    let token = form_urlencoded_value(&bytes, "csrf");
    if !token.is_some_and(|t| session.csrf_matches(&t)) {
        return refused(
            "the form's security token is missing or stale: reload the page and try again",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn refused(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        bare_page("Refused", html! { p.error { (why) } }),
    )
        .into_response()
}

/// A page outside the signed-in layout (login, refusals).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · fieldhook" }
                link rel="stylesheet" href=(CSS_PATH);
            }
            body.bare {
                main {
                    h1 { "fieldhook" }
                    (body)
                }
            }
        }
    }
}

/// The pages' navigation, in order.
const NAV: [(&str, &str); 6] = [
    ("/console", "Overview"),
    ("/console/events", "Events"),
    ("/console/dlq", "Dead letters"),
    ("/console/plugins", "Plugins"),
    ("/console/destinations", "Destinations"),
    ("/console/schedules", "Schedules"),
];

/// A signed-in page: navigation, logout, htmx, then `body`.
pub fn layout(session: &Session, current: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx may not add inline styles or evaluate code: the CSP forbids both.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0}"#;
                title { (title) " · fieldhook" }
                link rel="stylesheet" href=(CSS_PATH);
                script src=(HTMX_PATH) defer {}
            }
            body {
                header {
                    span.brand { "fieldhook" }
                    nav {
                        @for (href, label) in NAV {
                            a href=(href) class=[(href == current).then_some("current")] { (label) }
                        }
                    }
                    form.logout method="post" action="/console/logout" {
                        (csrf_field(session))
                        button type="submit" { "Log out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form that changes something carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// An admin error as a page.
pub fn error_page(session: &Session, e: &AdminError) -> Response {
    let status = e.status();
    if status.is_server_error() {
        tracing::error!(error = %e, "console");
    }
    (
        status,
        layout(session, "", "Not shown", html! { p.error { (e) } }),
    )
        .into_response()
}
