//! Schedules: each loaded plugin's schedules, their next slot and last run.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use super::session::Session;
use super::{Console, format, layout};

/// `GET /console/schedules`.
pub async fn page(State(c): State<Arc<Console>>, Extension(s): Extension<Session>) -> Markup {
    let list = c.admin.pipeline.schedule_status();
    layout(
        &s,
        "/console/schedules",
        "Schedules",
        html! {
            p.quiet { "Runs a plugin's " code { "[[schedules]]" } " ask for; times in UTC." }
            @match &list {
                Err(e) => p.error { "Cannot read the schedules: " (e) },
                Ok(list) if list.is_empty() => p.quiet { "No loaded plugin has a schedule." },
                Ok(list) => {
                    table.schedules {
                        thead {
                            tr { th { "plugin" } th { "schedule" } th { "next run" } th { "last run" } th { "outcome" } }
                        }
                        tbody {
                            @for st in list {
                                tr {
                                    td { code { (st.plugin) } }
                                    td { code { (st.schedule) } }
                                    td { (st.next_due_ms.map_or_else(|| "—".to_owned(), format::time)) }
                                    td { (st.last_run_ms.map_or_else(|| "not run yet".to_owned(), format::time)) }
                                    td {
                                        @if let Some(state) = st.last_state {
                                            span class=(format!("badge {state}")) { (state) } " "
                                        }
                                        (st.last_outcome.as_deref().unwrap_or(""))
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
