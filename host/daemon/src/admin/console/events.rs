//! The event list: newest first, filtered, paged by cursor; its first page
//! refreshes itself (htmx) while it is open.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::Session;
use super::{Console, error_page, format, layout};
use crate::admin::{AdminError, EventQuery, MAX_SCAN, WorkStatus};
use fieldhook_core::event::{EventRecord, event_time_ms};
use fieldhook_store::Examined;

/// Events on one page.
const PAGE: usize = 50;

/// Seconds between refreshes of the first page.
const POLL: &str = "every 3s";

/// The list's filters, as the form sends them (empty = any).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    #[serde(default)]
    source: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    text: String,
    /// `datetime-local`, UTC.
    #[serde(default)]
    from: String,
    /// `datetime-local`, UTC.
    #[serde(default)]
    to: String,
    /// The cursor: events older than this id.
    #[serde(default)]
    before: String,
    /// Most events to read for one page: [`MAX_SCAN`] unless lower.
    #[serde(default)]
    scan: String,
}

fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl Filters {
    fn query(&self) -> Result<EventQuery, AdminError> {
        let time = |field: &str, text: &str| match given(text) {
            None => Ok(None),
            Some(t) => format::parse_time(&t).map(Some).ok_or_else(|| {
                AdminError::BadRequest(format!(
                    "`{field}` must be a date and time like 2026-11-20T15:04 (UTC)"
                ))
            }),
        };
        Ok(EventQuery {
            source: given(&self.source),
            kind: given(&self.kind),
            status: match given(&self.status) {
                None => None,
                Some(name) => {
                    Some(WorkStatus::parse(&name).ok_or_else(|| {
                        AdminError::BadRequest(format!("unknown status `{name}`"))
                    })?)
                }
            },
            text: given(&self.text),
            since_ms: time("from", &self.from)?,
            until_ms: time("to", &self.to)?,
            before: given(&self.before),
            limit: PAGE + 1,
            scan: match given(&self.scan) {
                None => MAX_SCAN,
                Some(n) => n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    AdminError::BadRequest(format!("`scan` must be a number from 1 to {MAX_SCAN}"))
                })?,
            }
            .min(MAX_SCAN),
        })
    }

    /// `path?` with these filters, and `before` as given.
    fn url(&self, path: &str, before: Option<&str>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("source", &self.source),
            ("kind", &self.kind),
            ("status", &self.status),
            ("text", &self.text),
            ("from", &self.from),
            ("to", &self.to),
            ("scan", &self.scan),
        ] {
            if let Some(v) = given(value) {
                q.append_pair(name, &v);
            }
        }
        if let Some(b) = before {
            q.append_pair("before", b);
        }
        let q = q.finish();
        if q.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{q}")
        }
    }
}

/// `GET /console/events`.
pub async fn page(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(f): Query<Filters>,
) -> Response {
    let (list, examined) = match f.query().and_then(|q| c.admin.events_newest_first(&q)) {
        Ok(found) => found,
        Err(e) => return error_page(&s, &e),
    };
    layout(
        &s,
        "/console/events",
        "Events",
        html! {
            (filter_form(&f))
            table.events {
                thead { tr { th { "received (UTC)" } th { "source" } th { "kind" } th { "entity" } th { "work" } th.num { "bytes" } } }
                (rows_body(&f, &list, &examined))
            }
        },
    )
    .into_response()
}

/// `GET /console/events/rows`: the table body alone, for htmx.
pub async fn rows(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(f): Query<Filters>,
) -> Response {
    match f.query().and_then(|q| c.admin.events_newest_first(&q)) {
        Ok((list, examined)) => rows_body(&f, &list, &examined).into_response(),
        Err(e) => error_page(&s, &e),
    }
}

fn filter_form(f: &Filters) -> Markup {
    html! {
        form.filters method="get" action="/console/events" {
            label { "source " input type="text" name="source" value=(f.source) size="10"; }
            label { "kind " input type="text" name="kind" value=(f.kind) size="14" placeholder="job.completed"; }
            label { "work "
                select name="status" {
                    option value="" selected[f.status.is_empty()] { "any" }
                    @for st in WorkStatus::ALL {
                        option value=(st.name()) selected[f.status == st.name()] { (st.name()) }
                    }
                }
            }
            label { "body contains " input type="search" name="text" value=(f.text) size="14"; }
            label { "from " input type="datetime-local" name="from" value=(f.from) step="1"; }
            label { "to " input type="datetime-local" name="to" value=(f.to) step="1"; }
            button type="submit" { "Filter" }
            " "
            a href="/console/events" { "clear" }
        }
    }
}

/// The rows, and a link to the next (older) page. The first page asks htmx
/// to fetch it again every few seconds; older pages stay still.
fn rows_body(f: &Filters, list: &[(EventRecord, WorkStatus)], examined: &Examined) -> Markup {
    let more = list.len() > PAGE;
    let shown = &list[..list.len().min(PAGE)];
    let live = given(&f.before).is_none();
    let poll_url = f.url("/console/events/rows", None);
    html! {
        tbody #event-rows
            hx-get=[live.then_some(&poll_url)]
            hx-trigger=[live.then_some(POLL)]
            hx-swap=[live.then_some("outerHTML")] {
            @if shown.is_empty() {
                tr { td colspan="6" .quiet { "No events match." } }
            }
            @for (e, status) in shown {
                tr {
                    td { a href=(format!("/console/events/{}", e.id)) { (format::time(e.received_at_ms)) } }
                    td { (e.source) }
                    td { (e.kind) }
                    td { @if let Some(entity) = &e.entity { (entity.kind) " " (entity.id) } }
                    td { span class=(format!("badge {}", status.name())) { (status.name()) } }
                    td.num { (e.body.len()) }
                }
            }
            @if let Some(stopped_at) = &examined.stopped_at {
                tr.pager.scan-stopped {
                    td colspan="6" {
                        "Searched " (examined.count) " events back to "
                        (event_time_ms(stopped_at).map(format::time).unwrap_or_default())
                        " UTC; narrow the time range or "
                        a.go-on href=(f.url("/console/events", Some(stopped_at))) { "go on" }
                        "."
                    }
                }
            }
            tr.pager {
                td colspan="6" {
                    @if !live { a href=(f.url("/console/events", None)) { "← newest" } " " }
                    @if more {
                        @if let Some((last, _)) = shown.last() {
                            a href=(f.url("/console/events", Some(&last.id))) { "older →" }
                        }
                    }
                    @if live { span.quiet { " · refreshes every 3 s" } }
                }
            }
        }
    }
}
