//! One event: its headers (credentials masked), its body, and every job
//! and delivery with each attempt; a replay button.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::Session;
use super::{Console, csrf_field, error_page, format, layout};
use crate::admin::{AdminError, ReplayRequest, WorkStatus};
use fieldhook_pipeline::Pipeline;
use fieldhook_store::queue::{Task, Topic};

/// What the page says after a replay.
#[derive(Debug, Default, Deserialize)]
pub struct Replayed {
    replayed_jobs: Option<usize>,
}

/// `GET /console/events/{id}`.
pub async fn page(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(done): Query<Replayed>,
) -> Response {
    let (event, work) = match c.admin.event_with_work(&id) {
        Ok(found) => found,
        Err(e) => return error_page(&s, &e),
    };
    let status = WorkStatus::of(&work);
    layout(
        &s,
        "/console/events",
        &format!("Event {}", event.id),
        html! {
            @if let Some(n) = done.replayed_jobs {
                p.notice { "Replayed: the event was fanned out again; " (n) " earlier job(s) queued again." }
            }
            dl.facts {
                dt { "received" } dd { (format::time(event.received_at_ms)) " UTC" }
                dt { "source" } dd { (event.source) " (" (event.vendor) ")" }
                dt { "kind" } dd { (event.kind) }
                @if let Some(entity) = &event.entity {
                    dt { "entity" } dd { (entity.kind) " " (entity.id) }
                }
                @if let Some(at) = &event.occurred_at { dt { "occurred" } dd { (at) } }
                @if let Some(key) = &event.dedupe_key { dt { "dedupe key" } dd { code { (key) } } }
                dt { "work" } dd { span class=(format!("badge {}", status.name())) { (status.name()) } }
            }
            form.inline method="post" action=(format!("/console/events/{}/replay", event.id)) {
                (csrf_field(&s))
                button type="submit" { "Replay this event" }
                span.quiet { " runs every subscribed plugin again" }
            }
            h2 { "Headers" }
            table.headers {
                tbody {
                    @for (name, value) in &event.headers {
                        tr { th { (name) } td { code { (format::header_value(name, value)) } } }
                    }
                }
            }
            h2 { "Body (" (event.body.len()) " bytes)" }
            pre.body { code { (format::body(&event.body)) } }
            @for (topic, tasks) in &work {
                h2 id=(topic.name()) { (topic.name()) " (" (tasks.len()) ")" }
                @if tasks.is_empty() {
                    p.quiet { "None." }
                }
                @for task in tasks { (task_view(*topic, task)) }
            }
        },
    )
    .into_response()
}

fn task_view(topic: Topic, t: &Task) -> Markup {
    let origin = Pipeline::task_origin(topic, &t.payload);
    let delivery = match topic {
        Topic::Deliveries => Pipeline::delivery_payload(&t.payload),
        Topic::Jobs | Topic::Schedules => None,
    };
    html! {
        section.task {
            h3 {
                span class=(format!("badge {}", t.state.name())) { (t.state.name()) }
                " " code { (t.id) }
                @if let Some((_, plugin)) = &origin { " · plugin " (plugin) }
            }
            @if let Some(d) = &delivery {
                p { code { (d.request.method) " " (format::url_without_query(&d.request.url)) } }
            }
            table.attempts {
                thead { tr { th { "#" } th { "time (UTC)" } th { "outcome" } } }
                tbody {
                    @for (i, a) in t.history.iter().enumerate() {
                        tr { td { (i + 1) } td { (format::time(a.at_ms)) } td { (a.outcome) } }
                    }
                    @if t.history.is_empty() {
                        tr { td colspan="3" .quiet { "Not attempted yet; due " (format::time(t.due_ms)) } }
                    }
                }
            }
        }
    }
}

/// `POST /console/events/{id}/replay` (the CSRF token was checked).
pub async fn replay(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let request = ReplayRequest {
        event_id: Some(id.clone()),
        ..ReplayRequest::default()
    };
    match c.admin.replay(&request).await {
        Ok(report) if !report.missing.is_empty() => error_page(
            &s,
            &AdminError::NotFound(format!("no event `{id}` to replay")),
        ),
        // The id goes back into a URL: encoded, whatever was asked for.
        Ok(report) => Redirect::to(&format!(
            "/console/events/{}?replayed_jobs={}",
            form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>(),
            report.jobs
        ))
        .into_response(),
        Err(e) => error_page(&s, &e),
    }
}
