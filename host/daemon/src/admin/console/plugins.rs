//! Plugins: what is loaded, what it may do, and what failed to load.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use super::session::Session;
use super::{Console, format, layout};
use crate::admin::{AdminError, RecentFailure};
use fieldhook_runtime::LoadedPlugin;
use fieldhook_runtime::instances::InstancePolicy;

/// `GET /console/plugins`.
pub async fn page(State(c): State<Arc<Console>>, Extension(s): Extension<Session>) -> Markup {
    let (loaded, failures) = c.admin.plugins();
    let errors = c.admin.plugin_failures();
    let no_errors = Vec::new();
    let errors_of = |name: &str| match &errors {
        Ok(by_plugin) => Ok(by_plugin.get(name).unwrap_or(&no_errors)),
        Err(e) => Err(e),
    };
    layout(
        &s,
        "/console/plugins",
        "Plugins",
        html! {
            @if loaded.is_empty() {
                p.quiet { "No plugin is loaded." }
            }
            @for p in &loaded { (plugin(p, errors_of(&p.manifest.name))) }
            h2 { "Load failures (" (failures.len()) ")" }
            @if failures.is_empty() {
                p.quiet { "None." }
            } @else {
                table {
                    thead { tr { th { "directory" } th { "why" } } }
                    tbody {
                        @for f in &failures {
                            tr { td { code { (f.dir.display()) } } td.reason { (f.reason) } }
                        }
                    }
                }
            }
        },
    )
}

// The manifest's `[config]` is not shown: plugins keep settings there that
// an operator reads in the file, not on a page.
fn plugin(p: &LoadedPlugin, errors: Result<&Vec<RecentFailure>, &AdminError>) -> Markup {
    let m = &p.manifest;
    html! {
        section.plugin {
            h2 { (m.name) " " span.quiet { (m.version) } }
            dl.facts {
                dt { "contract" } dd { code { (p.wit_version) } }
                dt { "subscriptions" }
                dd {
                    @if m.subscriptions.is_empty() { span.quiet { "none" } }
                    @for sub in &m.subscriptions {
                        div {
                            "source " code { (sub.source) } ", kinds "
                            @if sub.kinds.is_empty() { "any" } @else { code { (sub.kinds.join(", ")) } }
                        }
                    }
                }
                dt { "limits" }
                dd {
                    (m.limits.memory_mb) " MiB memory, " (m.limits.timeout_ms) " ms a call, "
                    (m.limits.cpu_ms) " ms CPU"
                }
                dt { "instances" }
                dd {
                    @match p.instances {
                        InstancePolicy::Fresh => "a new one per call",
                        InstancePolicy::Reuse(r) => { "reused, recycled after " (r.after_calls) " calls" },
                    }
                }
                dt { "outbound HTTP grants" }
                dd {
                    @if m.http.rules().is_empty() { span.quiet { "none: no outbound HTTP" } }
                    @for rule in m.http.rules() {
                        div {
                            code {
                                (rule.methods.join(",")) " " (rule.scheme) "://" (rule.host)
                                @if let Some(port) = rule.port { ":" (port) }
                                (rule.path)
                            }
                            @if let Some(cred) = &rule.credential { " with credential " code { (cred) } }
                        }
                    }
                }
            }
            h3 { "Recent errors" }
            (recent_errors(errors))
        }
    }
}

/// A plugin's newest failed runs, from the task log.
fn recent_errors(errors: Result<&Vec<RecentFailure>, &AdminError>) -> Markup {
    html! {
        @match errors {
            Err(e) => p.error { "Cannot read the task log: " (e) },
            Ok(list) if list.is_empty() => p.quiet.no-errors { "None among recent jobs." },
            Ok(list) => table.recent-errors {
                thead { tr { th { "when (UTC)" } th { "event" } th { "why" } } }
                tbody {
                    @for f in list {
                        tr {
                            td { (format::time(f.at_ms)) }
                            td { a href=(format!("/console/events/{}", f.event_id())) { code { (f.event_id()) } } }
                            td.reason { (f.outcome) }
                        }
                    }
                }
            },
        }
    }
}
