//! The overview: what came in, what went out, what is waiting or failed.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use super::session::Session;
use super::{Console, format, layout};
use crate::admin::Stats;
use fieldhook_pipeline::metrics::Minute;

/// `GET /console`.
pub async fn page(State(c): State<Arc<Console>>, Extension(s): Extension<Session>) -> Markup {
    let stats = c.admin.stats();
    layout(&s, "/console", "Overview", view(&stats))
}

fn count(stats: &Stats, topic: &str, state: &str) -> u64 {
    stats
        .tasks
        .get(topic)
        .and_then(|states| states.get(state))
        .copied()
        .unwrap_or(0)
}

fn view(stats: &Stats) -> Markup {
    let rejected: u64 = stats.rejected.values().sum();
    let delivered = count(stats, "deliveries", "done");
    let open: Vec<&str> = stats
        .destinations
        .iter()
        .filter(|d| d["circuit"] != "closed")
        .filter_map(|d| d["origin"].as_str())
        .collect();
    html! {
        section.cards {
            (card("Webhooks received", stats.received, "since start", None))
            (card("Deliveries done", delivered, "kept until retention removes them", None))
            (card("Webhooks refused", rejected, "since start: signature, unknown source, too large", None))
            (card("Dead letters", stats.dlq, "jobs and deliveries that gave up", Some("/console/dlq")))
        }
        h2 { "The last hour, minute by minute" }
        section.cards {
            (card("Received", hour_sum(stats, |m| m.received), "webhooks in the last hour", Some("/console/events")))
            (card("Delivered", hour_sum(stats, |m| m.delivered), "deliveries in the last hour", None))
            (card("Failed deliveries", hour_sum(stats, |m| m.failed), "attempts in the last hour", Some("/console/destinations")))
            (card("Plugin errors", hour_sum(stats, |m| m.plugin_errors), "failed runs in the last hour", Some("/console/plugins")))
        }
        (per_minute(&stats.per_minute))
        @if !stats.store.writable {
            p.error {
                "The store cannot write: webhooks are answered 503. "
                (stats.store.error.clone().unwrap_or_default())
            }
        }
        h2 { "Backlog per topic" }
        table {
            thead { tr { th { "topic" } th.num { "ready" } th.num { "running" } th.num { "done" } th.num { "dead" } } }
            tbody {
                @for topic in ["jobs", "deliveries"] {
                    tr {
                        td { (topic) }
                        td.num { (count(stats, topic, "ready")) }
                        td.num { (count(stats, topic, "leased")) }
                        td.num { (count(stats, topic, "done")) }
                        td.num { (count(stats, topic, "dead")) }
                    }
                }
            }
        }
        (chart(stats))
        h2 { "Destinations with open circuits" }
        @if open.is_empty() {
            p.quiet { "None: every destination seen is taking deliveries." }
        } @else {
            ul { @for origin in &open { li { a href="/console/destinations" { (origin) } } } }
        }
        @if !stats.rejected.is_empty() {
            h2 { "Refused webhooks by status" }
            table {
                thead { tr { th { "status" } th.num { "count" } } }
                tbody { @for (status, n) in &stats.rejected { tr { td { (status) } td.num { (n) } } } }
            }
        }
    }
}

fn hour_sum(stats: &Stats, f: impl Fn(&Minute) -> u64) -> u64 {
    stats.per_minute.iter().map(f).sum()
}

/// Received, delivered and failed per minute as bars, oldest on the left.
/// Drawn on the server; each minute's `<title>` gives its counts.
fn per_minute(minutes: &[Minute]) -> Markup {
    const SERIES: [&str; 3] = ["received", "delivered", "failed"];
    // One minute is 11 units wide: three bars of 3 and a gap.
    const LEFT: u64 = 44;
    const TOP: u64 = 14;
    const HEIGHT: u64 = 120;
    let counts = |m: &Minute| [m.received, m.delivered, m.failed];
    let max = minutes.iter().flat_map(counts).max().unwrap_or(0).max(1);
    let last = minutes.len().saturating_sub(1);
    let right = LEFT + minutes.len() as u64 * 11;
    html! {
        svg.chart.per-minute viewBox="0 0 760 176" role="img" aria-label="webhooks received, delivered and failed per minute, last 60 minutes" {
            line.axis x1=(LEFT) y1=(TOP + HEIGHT) x2=(right) y2=(TOP + HEIGHT) {}
            line.grid x1=(LEFT) y1=(TOP) x2=(right) y2=(TOP) {}
            text.tick x="0" y=(TOP + 4) { (max) "/min" }
            text.tick x="0" y=(TOP + HEIGHT) { "0" }
            @for (i, m) in minutes.iter().enumerate() {
                @let x = LEFT + i as u64 * 11;
                g class=(if i == last { "minute now" } else { "minute" }) {
                    title {
                        (format::time(m.minute * 60_000)) ": received " (m.received)
                        ", delivered " (m.delivered) ", failed " (m.failed)
                    }
                    // A transparent strip so the whole minute shows its title.
                    rect.hover x=(x) y=(TOP) width="11" height=(HEIGHT) {}
                    @for (j, n) in counts(m).into_iter().enumerate() {
                        @if n > 0 {
                            @let h = (n * HEIGHT / max).max(1);
                            rect class=(format!("bar {}", SERIES[j])) x=(x + 1 + j as u64 * 3) y=(TOP + HEIGHT - h) width="3" height=(h) {}
                        }
                    }
                }
            }
            text.tick x=(LEFT) y=(TOP + HEIGHT + 16) { "60 min ago" }
            text.tick.end x=(right) y=(TOP + HEIGHT + 16) { "now" }
            @for (j, label) in SERIES.iter().enumerate() {
                @let x = LEFT + j as u64 * 110;
                rect class=(format!("bar {label}")) x=(x) y="160" width="12" height="12" {}
                text x=(x + 18) y="171" { (label) }
            }
        }
    }
}

fn card(label: &str, value: u64, note: &str, link: Option<&str>) -> Markup {
    html! {
        div.card {
            div.value {
                @if let Some(href) = link { a href=(href) { (value) } } @else { (value) }
            }
            div.label { (label) }
            div.note { (note) }
        }
    }
}

/// Tasks per topic by state as stacked bars: drawn on the server, styled
/// by the stylesheet (the CSP allows no inline style).
fn chart(stats: &Stats) -> Markup {
    const STATES: [(&str, &str); 4] = [
        ("ready", "ready"),
        ("leased", "running"),
        ("done", "done"),
        ("dead", "dead"),
    ];
    const WIDTH: u64 = 600;
    let rows: Vec<(&str, Vec<u64>)> = ["jobs", "deliveries"]
        .into_iter()
        .map(|topic| {
            (
                topic,
                STATES.map(|(state, _)| count(stats, topic, state)).to_vec(),
            )
        })
        .collect();
    let max = rows
        .iter()
        .map(|(_, counts)| counts.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    // Each topic's bars as (state, label, count, x, width).
    type Bars<'a> = Vec<(&'a str, &'a str, u64, u64, u64)>;
    let bars: Vec<(&str, Bars)> = rows
        .into_iter()
        .map(|(topic, counts)| {
            let mut x = 100;
            let parts = STATES
                .iter()
                .zip(counts)
                .map(|((state, label), n)| {
                    let w = n * WIDTH / max;
                    let part = (*state, *label, n, x, w);
                    x += w;
                    part
                })
                .collect();
            (topic, parts)
        })
        .collect();
    html! {
        svg.chart viewBox="0 0 760 110" role="img" aria-label="tasks per topic by state" {
            @for (i, (topic, parts)) in bars.iter().enumerate() {
                @let y = 10 + i as u64 * 40;
                text x="0" y=(y + 20) { (topic) }
                @for (state, label, n, x, w) in parts {
                    @if *w > 0 {
                        rect class=(format!("bar {state}")) x=(x) y=(y) width=(w) height="28" {
                            title { (label) ": " (n) }
                        }
                    }
                }
            }
            @for (i, (_, label)) in STATES.iter().enumerate() {
                @let x = 100 + i as u64 * 110;
                rect class=(format!("bar {}", STATES[i].0)) x=(x) y="92" width="12" height="12" {}
                text x=(x + 18) y="103" { (label) }
            }
        }
    }
}
