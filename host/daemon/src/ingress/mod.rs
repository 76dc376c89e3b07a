//! The webhook listener: `POST /hooks/{source}` and
//! `POST /hooks/{source}/{token}`.
//!
//! Verify the raw bytes, answer handshakes, store durably, then answer 2xx.
//! Plugins never run inside the request. Every failure answer comes from the
//! source's vendor ([`fieldhook_vendors::Vendor::status_for`]), because some vendors
//! read a 4xx as "delivered" or "unsubscribe".

pub mod body;
pub mod dev_sink;
pub mod limits;
pub mod source;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;

use fieldhook_core::event::{EntityRecord, Message, NewEvent};
use fieldhook_core::time::now_ms;
use fieldhook_pipeline::metrics::Metrics;
use fieldhook_store::{EventStore, Ingested, StoreError};
use fieldhook_vendors::{Failure, Inbound, Verdict};

use body::BodyError;
use limits::Limits;
use source::Source;

/// What the webhook listener serves: its sources, how large a body may be,
/// how long and how many clients it waits for (`[ingress]`), and the
/// development helpers (`[dev]`).
#[derive(Debug, Clone)]
pub struct IngressSettings {
    /// The configured sources, by name in `/hooks/{name}`.
    pub sources: Vec<Source>,
    /// Largest accepted body, bytes.
    pub max_body_bytes: usize,
    /// Read timeouts and the connection cap.
    pub limits: Limits,
    /// Serve the development sink (`/_sink/{name}`).
    pub dev_sink: bool,
}

/// Where verified events go. The daemon stores them; the ingest benchmark
/// also runs the same server with a sink that discards, as its baseline.
pub trait EventSink: Send + Sync + 'static {
    /// Makes the events durable (or not), returning one outcome per event.
    fn ingest(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<Ingested>, StoreError>>;
}

/// The durable sink: the store, then a wake-up for the fan-out task.
pub struct StoreSink {
    /// The store.
    pub store: EventStore,
    /// Dedupe window, ms.
    pub dedupe_window_ms: u64,
    /// Called after events are durable.
    pub on_stored: Box<dyn Fn() + Send + Sync>,
}

impl EventSink for StoreSink {
    fn ingest(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<Ingested>, StoreError>> {
        Box::pin(async move {
            let out = self.store.ingest(events, self.dedupe_window_ms).await?;
            if out.iter().any(|o| matches!(o, Ingested::Stored(_))) {
                (self.on_stored)();
            }
            Ok(out)
        })
    }
}

/// The sources in force. Reloading the configuration replaces them whole;
/// a request being handled keeps the source it started with.
#[derive(Debug, Clone, Default)]
pub struct LiveSources(Arc<std::sync::RwLock<Arc<SourcesByName>>>);

/// One configuration's sources, by the name in `/hooks/{name}`.
type SourcesByName = HashMap<String, Arc<Source>>;

impl LiveSources {
    /// `sources` in force.
    pub fn new(sources: &[Source]) -> Self {
        let live = Self::default();
        live.replace(sources);
        live
    }

    /// Puts `sources` in force for every request from now on.
    pub fn replace(&self, sources: &[Source]) {
        let map = sources
            .iter()
            .map(|s| (s.name.clone(), Arc::new(s.clone())))
            .collect();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
    }

    fn get(&self, name: &str) -> Option<Arc<Source>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

/// Shared state of the listener.
pub struct Ingress {
    sources: LiveSources,
    sink: Arc<dyn EventSink>,
    max_body_bytes: usize,
    body_read_timeout: std::time::Duration,
    dev_sink: Option<dev_sink::DevSink>,
}

/// Builds the listener's router.
pub fn router(settings: &IngressSettings, sink: Arc<dyn EventSink>) -> Router {
    router_with(settings, LiveSources::new(&settings.sources), sink)
}

/// Builds the listener's router, serving whatever `sources` holds.
pub fn router_with(
    settings: &IngressSettings,
    sources: LiveSources,
    sink: Arc<dyn EventSink>,
) -> Router {
    let state = Arc::new(Ingress {
        sources,
        sink,
        max_body_bytes: settings.max_body_bytes,
        body_read_timeout: settings.limits.body_read_timeout(),
        dev_sink: settings.dev_sink.then(dev_sink::DevSink::default),
    });
    let mut router = Router::new()
        .route("/hooks/{source}", post(hook))
        .route("/hooks/{source}/{token}", post(hook_with_token))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(no_such_endpoint);
    if state.dev_sink.is_some() {
        router = router.route("/_sink/{name}", post(dev_sink::receive).get(dev_sink::list));
    }
    router
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(state)
}

/// Middleware for the webhook listener: counts `/hooks/...` answers and
/// times them.
pub async fn track(
    State(m): State<Arc<Metrics>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !req.uri().path().starts_with("/hooks/") {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    m.webhook(resp.status().as_u16(), started.elapsed());
    resp
}

/// The TCP peer's address, when the server was started with connect info
/// (the daemon is; a router served without it still works, with no
/// address to check `allowed_ips` against).
struct Peer(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

async fn hook(
    State(s): State<Arc<Ingress>>,
    Path(source): Path<String>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&s, &source, None, peer, headers, body).await
}

async fn hook_with_token(
    State(s): State<Arc<Ingress>>,
    Path((source, token)): Path<(String, String)>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&s, &source, Some(&token), peer, headers, body).await
}

/// The peer for log lines: the address, or `unknown` without connect info.
struct ShowPeer(Option<IpAddr>);

impl std::fmt::Display for ShowPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// Anything but the routes above: say where webhooks go, and log it
/// (a vendor pointed at a wrong URL shows up here).
async fn no_such_endpoint(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    tracing::warn!(%method, path = uri.path(), "request for no fieldhook endpoint; webhooks go to /hooks/{{source}} or /hooks/{{source}}/{{token}}");
    text(
        404,
        "no such endpoint: webhooks go to POST /hooks/{source} or /hooks/{source}/{token}",
    )
}

fn text(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = message.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `{"stored": [...], "duplicates": [...]}`, written directly: event ids
/// are `evt_` and a ULID, nothing to escape.
fn stored_json(stored: &[&str], duplicates: &[&str]) -> String {
    fn list(out: &mut String, ids: &[&str]) {
        out.push('[');
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(id);
            out.push('"');
        }
        out.push(']');
    }
    let mut out = String::with_capacity(32 + 36 * (stored.len() + duplicates.len()));
    out.push_str("{\"stored\":");
    list(&mut out, stored);
    out.push_str(",\"duplicates\":");
    list(&mut out, duplicates);
    out.push('}');
    out
}

async fn handle(
    s: &Ingress,
    source_name: &str,
    token: Option<&str>,
    peer: Option<IpAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Formatted only when a line is logged: nothing to pay on the hot path.
    let peer_text = ShowPeer(peer);
    let Some(source) = s.sources.get(source_name) else {
        tracing::warn!(
            source = source_name,
            peer = %peer_text,
            "webhook for an unknown source: no [[sources]] block has this name; check the URL configured at the vendor"
        );
        return text(404, format!("unknown source `{source_name}`"));
    };
    let vendor = &source.vendor;
    let body = match body::read(body, s.max_body_bytes, s.body_read_timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { .. }) => {
            let status = vendor.status_for(Failure::TooLarge);
            tracing::warn!(
                source = source_name,
                vendor = vendor.name(),
                peer = %peer_text,
                status,
                "webhook body over max_body_bytes; raise max_body_bytes if this sender is legitimate"
            );
            return text(status, "body too large");
        }
        Err(BodyError::TimedOut(after)) => {
            let status = vendor.status_for(Failure::TimedOut);
            tracing::warn!(
                source = source_name,
                vendor = vendor.name(),
                peer = %peer_text,
                status,
                ms = after.as_millis() as u64,
                "webhook body did not arrive in time; nothing stored. Raise [ingress] body_read_timeout_ms if this sender is legitimately slow"
            );
            return text(status, "body not received in time");
        }
        Err(e @ BodyError::Failed(_)) => {
            let status = vendor.status_for(Failure::StoreUnavailable);
            tracing::warn!(source = source_name, peer = %peer_text, status, error = %e, "cannot read the webhook body");
            return text(status, "cannot read body");
        }
    };
    let inbound = Inbound {
        headers: &headers,
        body: &body,
        path_token: token,
        now: Inbound::now_unix(),
        peer,
    };
    let normalized = match vendor.check(&inbound) {
        Err(rejection) => {
            let status = vendor.status_for(Failure::Rejected);
            tracing::warn!(
                source = source_name,
                vendor = vendor.name(),
                peer = %peer_text,
                status,
                reason = %rejection,
                "webhook rejected; `fieldhook verify` explains a captured request step by step"
            );
            return text(status, format!("rejected: {rejection}"));
        }
        Ok(Verdict::Handshake {
            status,
            content_type,
            body,
        }) => {
            tracing::info!(
                source = source_name,
                vendor = vendor.name(),
                "answered a handshake"
            );
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        }
        Ok(Verdict::Events(list)) => list,
    };
    if normalized.iter().any(|n| !n.parsed) {
        // Verified, so never dropped: the raw bytes are stored and plugins
        // see them, with kind `unknown` when nothing could be read.
        tracing::warn!(
            source = source_name,
            vendor = vendor.name(),
            content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)"),
            bytes = body.len(),
            "verified webhook body is not what the vendor documents; storing it unparsed"
        );
    }
    let received_at_ms = now_ms();
    // One message, however many events the vendor splits it into: the
    // store keeps it once for all of them.
    let message = Arc::new(Message {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: body.to_vec(),
    });
    let events: Vec<NewEvent> = normalized
        .into_iter()
        .map(|n| NewEvent {
            source: source.name.clone(),
            vendor: vendor.name().to_owned(),
            kind: n.kind,
            entity: n.entity.map(|e| EntityRecord {
                kind: e.kind,
                id: e.id,
                url: e.url,
            }),
            occurred_at: n.occurred_at,
            dedupe_key: n.dedupe_key,
            parsed: n.parsed,
            received_at_ms,
            message: message.clone(),
        })
        .collect();
    match s.sink.ingest(events).await {
        Ok(out) => {
            let stored: Vec<&str> = out
                .iter()
                .filter_map(|o| match o {
                    Ingested::Stored(id) => Some(id.as_str()),
                    Ingested::Duplicate(_) => None,
                })
                .collect();
            let duplicates: Vec<&str> = out
                .iter()
                .filter_map(|o| match o {
                    Ingested::Duplicate(id) => Some(id.as_str()),
                    Ingested::Stored(_) => None,
                })
                .collect();
            tracing::debug!(source = source_name, ?stored, ?duplicates, "webhook stored");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                stored_json(&stored, &duplicates),
            )
                .into_response()
        }
        Err(e) => {
            // The store logs when writing stops and resumes; not per request.
            tracing::debug!(source = source_name, error = %e, "cannot store webhook");
            text(
                vendor.status_for(Failure::StoreUnavailable),
                "temporarily unable to store",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stored_json;

    #[test]
    fn the_answer_lists_stored_and_duplicate_ids_as_json() {
        let v: serde_json::Value =
            serde_json::from_str(&stored_json(&["evt_1", "evt_2"], &["evt_0"])).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"stored": ["evt_1", "evt_2"], "duplicates": ["evt_0"]})
        );
        let v: serde_json::Value = serde_json::from_str(&stored_json(&[], &[])).unwrap();
        assert_eq!(v, serde_json::json!({"stored": [], "duplicates": []}));
    }
}
