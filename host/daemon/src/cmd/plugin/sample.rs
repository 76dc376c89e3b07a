//! Sample events and canned responses for `fieldhook plugin run`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, bail};
use fieldhook_core::event::{EntityRecord, EventRecord};
use fieldhook_policy::grants::{Allowlist, Denied, Target};
use fieldhook_runtime::responder::{Answer, CannedResponse, Outcome, Responder, SeenRequest};
use serde::Deserialize;

/// A sample event file: the event as the daemon would store it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleEvent {
    #[serde(default = "default_source")]
    source: String,
    #[serde(default = "default_vendor")]
    vendor: String,
    #[serde(default = "default_kind")]
    kind: String,
    entity: Option<SampleEntity>,
    occurred_at: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// JSON (sent as its text) or a string (sent as is).
    body: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleEntity {
    kind: String,
    id: String,
    url: Option<String>,
}

fn default_source() -> String {
    "local".into()
}
fn default_vendor() -> String {
    "generic-hmac".into()
}
fn default_kind() -> String {
    "unknown".into()
}

/// Reads a sample event: the envelope written by `plugin new`, or any other
/// file taken as the raw body. Returns the event and its attempt number.
pub fn read_event(path: &Path) -> anyhow::Result<(EventRecord, u32)> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read event {}", path.display()))?;
    let envelope = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .filter(|v| v.get("body").is_some());
    let id = fieldhook_core::event::event_id(ulid::Ulid::new());
    let received_at_ms = fieldhook_core::time::now_ms();
    let Some(envelope) = envelope else {
        // A raw body: take the kind from its `event` or `type` field, as
        // most vendors name it.
        let kind = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                ["event", "type"]
                    .iter()
                    .find_map(|k| v[k].as_str().map(str::to_owned))
            })
            .unwrap_or_else(default_kind);
        return Ok((
            EventRecord {
                id,
                source: default_source(),
                vendor: default_vendor(),
                kind,
                entity: None,
                occurred_at: None,
                dedupe_key: None,
                parsed: false,
                received_at_ms,
                headers: Vec::new(),
                body: bytes,
            },
            1,
        ));
    };
    let s: SampleEvent = serde_json::from_value(envelope).with_context(|| {
        format!(
            "{} is a sample event with a field that is not understood",
            path.display()
        )
    })?;
    let body = match s.body {
        serde_json::Value::String(text) => text.into_bytes(),
        other => other.to_string().into_bytes(),
    };
    Ok((
        EventRecord {
            id,
            source: s.source,
            vendor: s.vendor,
            kind: s.kind,
            entity: s.entity.map(|e| EntityRecord {
                kind: e.kind,
                id: e.id,
                url: e.url,
            }),
            occurred_at: s.occurred_at,
            dedupe_key: None,
            parsed: true,
            received_at_ms,
            headers: s
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_bytes()))
                .collect(),
            body,
        },
        s.attempt.unwrap_or(1),
    ))
}

/// One canned response in a `--responses` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Canned {
    /// Method to match; absent: any.
    method: Option<String>,
    /// URL to match exactly, or a prefix ending in `*`.
    url: String,
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// JSON (sent as its text, with `content-type: application/json`) or a
    /// string (sent as is).
    #[serde(default)]
    body: serde_json::Value,
}

fn ok() -> u16 {
    200
}

/// Answers from a `--responses` file and records every request. A request
/// the manifest does not grant is refused, as the daemon would.
pub struct CannedResponses {
    canned: Vec<Canned>,
    grants: Allowlist,
    pub seen: Mutex<Vec<(SeenRequest, Outcome)>>,
}

impl CannedResponses {
    pub fn load(path: &Path, grants: Allowlist) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let canned: Vec<Canned> = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} must be a JSON list of {{\"method\", \"url\", \"status\", \"headers\", \"body\"}}",
                path.display()
            )
        })?;
        for c in &canned {
            if !(100..=599).contains(&c.status) {
                bail!(
                    "{}: status {} for {} is not an HTTP status",
                    path.display(),
                    c.status,
                    c.url
                );
            }
        }
        Ok(Self {
            canned,
            grants,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn matches(c: &Canned, request: &SeenRequest) -> bool {
        let method = c
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(&request.method));
        let url = match c.url.strip_suffix('*') {
            Some(prefix) => request.url.starts_with(prefix),
            None => request.url == c.url,
        };
        method && url
    }
}

impl Responder for CannedResponses {
    fn respond(&self, request: &SeenRequest) -> Answer {
        let denied = match Target::parse(&request.method, &request.url) {
            Ok(t) => self.grants.check(&t).err(),
            Err(e) => Some(e),
        };
        if let Some(denied) = denied {
            return Answer::Deny(match denied {
                Denied::NotGranted { .. } => {
                    "not granted by plugin.toml's [[http]] rules".to_owned()
                }
                other => other.to_string(),
            });
        }
        let Some(c) = self.canned.iter().find(|c| Self::matches(c, request)) else {
            return Answer::Deny(format!(
                "no canned response for {} {}",
                request.method, request.url
            ));
        };
        let mut headers: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let body = match &c.body {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::String(s) => s.clone().into_bytes(),
            other => {
                if !c
                    .headers
                    .keys()
                    .any(|k| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                other.to_string().into_bytes()
            }
        };
        Answer::Canned(CannedResponse {
            status: c.status,
            headers,
            body,
        })
    }

    fn record(&self, request: SeenRequest, outcome: Outcome) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((request, outcome));
    }
}
