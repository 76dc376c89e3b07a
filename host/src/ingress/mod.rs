//! The webhook listener: `POST /hooks/{source}` and
//! `POST /hooks/{source}/{token}`.
//!
//! Verify the raw bytes, answer handshakes, store durably, then answer 2xx.
//! Plugins never run inside the request. Every failure answer comes from the
//! source's vendor ([`vendors::Vendor::status_for`]), because some vendors
//! read a 4xx as "delivered" or "unsubscribe".

pub mod dev_sink;
pub mod vendors;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;

use crate::config::{Config, Source};
use crate::store::{EntityRecord, Ingested, NewEvent, Store, StoreError};
use crate::time::now_ms;
use vendors::{Failure, Inbound, Verdict};

/// Where verified events go. The daemon stores them; the ingest benchmark
/// also runs the same server with a sink that discards, as its baseline.
pub trait EventSink: Send + Sync + 'static {
    /// Makes the events durable (or not), returning one outcome per event.
    fn ingest(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<Ingested>, StoreError>>;
}

/// The durable sink: the store, then a wake-up for the fan-out task.
pub struct StoreSink {
    /// The store.
    pub store: Store,
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

/// Shared state of the listener.
pub struct Ingress {
    sources: HashMap<String, Source>,
    sink: Arc<dyn EventSink>,
    dev_sink: Option<dev_sink::DevSink>,
}

/// Builds the listener's router.
pub fn router(config: &Config, sink: Arc<dyn EventSink>) -> Router {
    let state = Arc::new(Ingress {
        sources: config
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect(),
        sink,
        dev_sink: config.dev.sink.then(dev_sink::DevSink::default),
    });
    let mut router = Router::new()
        .route("/hooks/{source}", post(hook))
        .route("/hooks/{source}/{token}", post(hook_with_token))
        .route("/healthz", get(|| async { "ok\n" }));
    if state.dev_sink.is_some() {
        router = router.route(
            "/_sink/{name}",
            post(dev_sink::receive).get(dev_sink::list),
        );
    }
    router
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

async fn hook(
    State(s): State<Arc<Ingress>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(&s, &source, None, headers, body).await
}

async fn hook_with_token(
    State(s): State<Arc<Ingress>>,
    Path((source, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(&s, &source, Some(&token), headers, body).await
}

fn text(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = message.into();
    body.push('\n');
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn handle(
    s: &Ingress,
    source_name: &str,
    token: Option<&str>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(source) = s.sources.get(source_name) else {
        tracing::warn!(source = source_name, "webhook for an unknown source");
        return text(404, format!("unknown source `{source_name}`"));
    };
    let vendor = &source.vendor;
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            tracing::warn!(source = source_name, "webhook body over the configured max_body_bytes");
            return text(vendor.status_for(Failure::TooLarge), "body too large");
        }
        Err(rejection) => {
            tracing::warn!(source = source_name, error = %rejection, "cannot read the webhook body");
            return text(vendor.status_for(Failure::StoreUnavailable), "cannot read body");
        }
    };
    let inbound = Inbound {
        headers: &headers,
        body: &body,
        path_token: token,
        now: Inbound::now_unix(),
    };
    let normalized = match vendor.check(&inbound) {
        Err(rejection) => {
            tracing::warn!(source = source_name, vendor = vendor.name(), reason = %rejection, "webhook rejected");
            return text(vendor.status_for(Failure::Rejected), format!("rejected: {rejection}"));
        }
        Ok(Verdict::Handshake {
            status,
            content_type,
            body,
        }) => {
            tracing::info!(source = source_name, vendor = vendor.name(), "answered a handshake");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        }
        Ok(Verdict::Events(list)) => list,
    };
    let received_at_ms = now_ms();
    let stored_headers: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
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
            headers: stored_headers.clone(),
            body: body.to_vec(),
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
            let body = serde_json::json!({ "stored": stored, "duplicates": duplicates });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => {
            tracing::error!(source = source_name, error = %e, "cannot store webhook");
            text(vendor.status_for(Failure::StoreUnavailable), "temporarily unable to store")
        }
    }
}
