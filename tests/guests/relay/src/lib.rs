//! Relays each event to `endpoint` as `{"label", "event", "fetched"}`.
//!
//! Manifest `[config]`: `endpoint` (required); `label` (which version of
//! the plugin this is: tests install the same component under two labels);
//! `busy_ms` (spin this long first, so an event is still running when the
//! plugin is replaced); `fetch` (GET this URL first and report its status,
//! for `fieldhook plugin run --responses`).

use fieldhook_guest::{Decision, Event, Plugin, PluginError, Request, config, http, log};
use serde_json::json;

struct Relay;

impl Plugin for Relay {
    fn handle(event: Event) -> Result<Decision, PluginError> {
        let label = config::get("label").unwrap_or_else(|| "unlabelled".into());
        if let Some(ms) = config::get("busy_ms").and_then(|v| v.parse::<u64>().ok()) {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        let fetched = match config::get("fetch") {
            Some(url) => Some(http::get(&url)?.status),
            None => None,
        };
        log::info(format!("relay {label}: {}", event.id()));
        let request = Request::post(config::require("endpoint")?).json(&json!({
            "label": label,
            "event": event.id(),
            "fetched": fetched,
        }));
        Ok(Decision::deliver([request]))
    }
}

fieldhook_guest::export_plugin!(Relay);
