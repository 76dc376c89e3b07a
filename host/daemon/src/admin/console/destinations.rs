//! Destinations: their limits and circuits.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use super::session::Session;
use super::{Console, format, layout};
use fieldhook_pipeline::policy::{Backoff, Policy};

/// `GET /console/destinations`.
pub async fn page(State(c): State<Arc<Console>>, Extension(s): Extension<Session>) -> Markup {
    let list = c.admin.pipeline.destinations.overview();
    let failures = c.admin.destination_failures();
    layout(
        &s,
        "/console/destinations",
        "Destinations",
        html! {
            p.quiet { "Those configured in " code { "[[destinations]]" } " and those sent to since start; others follow " code { "[delivery]" } "." }
            @if list.is_empty() {
                p.quiet { "No destination yet." }
            } @else {
                table.destinations {
                    thead {
                        tr {
                            th { "origin" } th { "circuit" } th.num { "in flight" } th { "concurrency" }
                            th { "rate" } th { "attempts" } th { "retries" } th { "circuit opens" }
                        }
                    }
                    tbody {
                        @for (status, policy) in &list {
                            tr {
                                td { code { (status.origin) } }
                                td { span class=(format!("badge circuit-{}", status.circuit)) { (status.circuit) } }
                                td.num { (status.in_flight) }
                                td { (policy.concurrency.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())) }
                                td { (rates(policy)) }
                                td {
                                    "at most " (policy.max_attempts)
                                    @if let Some(age) = policy.max_age_ms { ", for " ((age / 1000)) " s" }
                                }
                                td { (backoff(&policy.backoff)) }
                                td { "after " (policy.breaker_failures) " failures, for " (policy.breaker_open.as_secs()) " s" }
                            }
                        }
                    }
                }
            }
            h2 { "Recent failures" }
            @match &failures {
                Err(e) => p.error { "Cannot read the task log: " (e) },
                Ok(by_origin) if by_origin.is_empty() => p.quiet { "None among recent deliveries." },
                Ok(by_origin) => {
                    @for (origin, list) in by_origin {
                        section.task.destination-failures {
                            h3 { code { (origin) } }
                            table.recent-failures {
                                thead { tr { th { "when (UTC)" } th { "status" } th { "event" } th { "why" } } }
                                tbody {
                                    @for f in list {
                                        tr {
                                            td { (format::time(f.at_ms)) }
                                            td { @if let Some(status) = f.status() { (status) } @else { span.quiet { "no answer" } } }
                                            td { a href=(format!("/console/events/{}#deliveries", f.event_id())) { code { (f.event_id()) } } }
                                            td.reason { (f.outcome) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn rates(p: &Policy) -> String {
    if p.rates.is_empty() {
        return "unlimited".into();
    }
    p.rates
        .iter()
        .map(|(per_sec, burst)| format!("{per_sec:.2}/s (burst {burst:.0})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn backoff(b: &Backoff) -> String {
    match b {
        Backoff::Exponential { base_ms, max_ms } => {
            format!("exponential from {base_ms} ms, at most {max_ms} ms")
        }
        Backoff::Schedule(delays) => format!(
            "after {} ms",
            delays
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
