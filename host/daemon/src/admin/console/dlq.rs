//! Dead letters: filter them, see how many a replay touches, then replay
//! them all at once.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::Session;
use super::{Console, csrf_field, error_page, format, layout};
use crate::admin::{AdminError, DlqRequest, ReplayRequest};
use fieldhook_pipeline::replay::{DeadLetter, MAX_REPLAY};
use fieldhook_store::queue::Topic;

/// Dead letters listed on the page (a replay takes every match).
const SHOWN: usize = 200;

/// The filter, as the forms send it (empty = any).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filter {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    plugin: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    reason: String,
}

fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl Filter {
    fn request(&self) -> DlqRequest {
        DlqRequest {
            topic: given(&self.topic),
            plugin: given(&self.plugin),
            source: given(&self.source),
            reason: given(&self.reason),
            event_id: None,
        }
    }

    fn matching(&self, c: &Console, limit: usize) -> Result<Vec<DeadLetter>, AdminError> {
        c.admin.dead_letters(&self.request().filter()?, limit)
    }

    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("topic", &self.topic),
            ("plugin", &self.plugin),
            ("source", &self.source),
            ("reason", &self.reason),
        ] {
            if let Some(v) = given(value) {
                q.append_pair(name, &v);
            }
        }
        q.finish()
    }

    fn hidden_fields(&self) -> Markup {
        html! {
            input type="hidden" name="topic" value=(self.topic);
            input type="hidden" name="plugin" value=(self.plugin);
            input type="hidden" name="source" value=(self.source);
            input type="hidden" name="reason" value=(self.reason);
        }
    }
}

/// `GET /console/dlq`.
pub async fn page(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(f): Query<Filter>,
) -> Response {
    let list = match f.matching(&c, SHOWN) {
        Ok(list) => list,
        Err(e) => return error_page(&s, &e),
    };
    layout(
        &s,
        "/console/dlq",
        "Dead letters",
        html! {
            form.filters method="get" action="/console/dlq" {
                label { "topic "
                    select name="topic" {
                        option value="" selected[f.topic.is_empty()] { "any" }
                        @for t in Topic::ALL {
                            option value=(t.name()) selected[f.topic == t.name()] { (t.name()) }
                        }
                    }
                }
                label { "plugin " input type="text" name="plugin" value=(f.plugin) size="14"; }
                label { "source " input type="text" name="source" value=(f.source) size="10"; }
                label { "reason contains " input type="search" name="reason" value=(f.reason) size="16"; }
                button type="submit" { "Filter" }
                " "
                a href="/console/dlq" { "clear" }
            }
            @if list.is_empty() {
                p.quiet { "No dead letters match." }
            } @else {
                form.inline method="get" action="/console/dlq/replay" {
                    (f.hidden_fields())
                    button #review-replay type="submit" { "Replay these…" }
                    span.quiet { " shows how many will be queued again before anything changes" }
                }
                (table(&list))
                @if list.len() >= SHOWN {
                    p.quiet { "The first " (SHOWN) " are shown; a replay takes every match." }
                }
            }
        },
    )
    .into_response()
}

fn table(list: &[DeadLetter]) -> Markup {
    html! {
        table.dlq {
            thead { tr { th { "topic" } th { "event" } th { "plugin" } th.num { "attempts" } th { "last attempt (UTC)" } th { "reason" } } }
            tbody {
                @for d in list {
                    tr {
                        td { (d.topic.name()) }
                        td { @if let Some(id) = &d.event_id { a href=(format!("/console/events/{id}")) { code { (id) } } } }
                        td { (d.plugin.clone().unwrap_or_default()) }
                        td.num { (d.task.attempts) }
                        td { @if let Some(a) = d.task.history.last() { (format::time(a.at_ms)) } }
                        td.reason { (d.reason) }
                    }
                }
            }
        }
    }
}

/// `GET /console/dlq/replay`: how many a replay of this filter touches,
/// and the button that does it.
pub async fn confirm(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(f): Query<Filter>,
) -> Response {
    let list = match f.matching(&c, MAX_REPLAY) {
        Ok(list) => list,
        Err(e) => return error_page(&s, &e),
    };
    let jobs = list.iter().filter(|d| d.topic == Topic::Jobs).count();
    let deliveries = list.len() - jobs;
    let back = match f.query() {
        q if q.is_empty() => "/console/dlq".to_owned(),
        q => format!("/console/dlq?{q}"),
    };
    layout(
        &s,
        "/console/dlq",
        "Replay dead letters",
        html! {
            p #replay-count {
                "This replay queues again " strong { (list.len()) } " dead letter(s): "
                (jobs) " job(s) and " (deliveries) " deliver" @if deliveries == 1 { "y" } @else { "ies" } "."
            }
            @if list.len() >= MAX_REPLAY {
                p.error { "That is the most one replay takes (" (MAX_REPLAY) "); replay again for the rest." }
            }
            dl.facts {
                dt { "topic" } dd { (given(&f.topic).unwrap_or_else(|| "any".into())) }
                dt { "plugin" } dd { (given(&f.plugin).unwrap_or_else(|| "any".into())) }
                dt { "source" } dd { (given(&f.source).unwrap_or_else(|| "any".into())) }
                dt { "reason contains" } dd { (given(&f.reason).unwrap_or_else(|| "anything".into())) }
            }
            @if !list.is_empty() {
                form.inline method="post" action="/console/dlq/replay" {
                    (csrf_field(&s))
                    (f.hidden_fields())
                    button #confirm-replay .danger type="submit" { "Replay " (list.len()) " dead letter(s)" }
                }
            }
            p { a href=(back) { "← back to the dead letters" } }
        },
    )
    .into_response()
}

/// `POST /console/dlq/replay` (the CSRF token was checked).
pub async fn replay(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Form(f): Form<Filter>,
) -> Response {
    let request = ReplayRequest {
        dlq: Some(f.request()),
        ..ReplayRequest::default()
    };
    match c.admin.replay(&request).await {
        Ok(report) => layout(
            &s,
            "/console/dlq",
            "Replayed",
            html! {
                p.notice #replay-result {
                    "Queued again: " (report.jobs) " job(s) and " (report.deliveries) " deliver"
                    @if report.deliveries == 1 { "y" } @else { "ies" } "."
                }
                p { a href="/console/dlq" { "← dead letters" } " · " a href="/console" { "overview" } }
            },
        )
        .into_response(),
        Err(e) => error_page(&s, &e),
    }
}
