//! A stand-in destination for trying fieldhook out: `POST /_sink/{name}`
//! logs what arrives and `GET /_sink/{name}` lists the last 100 requests.
//! Enabled by `[dev] sink = true`; never on in production configurations.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;

use super::Ingress;

const KEPT: usize = 100;

/// Received requests per sink name.
#[derive(Default)]
pub struct DevSink {
    received: Mutex<HashMap<String, VecDeque<serde_json::Value>>>,
}

pub(super) async fn receive(
    State(s): State<Arc<Ingress>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let body_text = String::from_utf8_lossy(&body).into_owned();
    // A plugin's delivery: one line of the log, bounded.
    tracing::info!(
        sink = %name,
        body = %fieldhook_core::text::one_line(&body_text, 4096),
        "dev sink received a delivery"
    );
    let entry = serde_json::json!({
        "headers": headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect::<HashMap<_, _>>(),
        "body": serde_json::from_slice::<serde_json::Value>(&body).unwrap_or(serde_json::Value::String(body_text)),
    });
    if let Some(sink) = &s.dev_sink {
        let mut map = match sink.received.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let list = map.entry(name).or_default();
        if list.len() == KEPT {
            list.pop_front();
        }
        list.push_back(entry);
    }
    "ok\n"
}

pub(super) async fn list(
    State(s): State<Arc<Ingress>>,
    Path(name): Path<String>,
) -> Json<Vec<serde_json::Value>> {
    let Some(sink) = &s.dev_sink else {
        return Json(vec![]);
    };
    let map = match sink.received.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    Json(
        map.get(&name)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default(),
    )
}
