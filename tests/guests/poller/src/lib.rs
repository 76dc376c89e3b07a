//! On its schedule, GETs `{api}/jobs` (a JSON list of
//! `{"key", "id"}`) and emits each job as a Housecall Pro style
//! `job.updated` event deduplicated on `key`, then sleeps `busy_ms` (so a
//! test can kill the daemon mid-run). `handle` does nothing.

use fieldhook_guest::emit::{self, NewEvent};
use fieldhook_guest::{Decision, Event, Plugin, PluginError, config, http};
use serde_json::{Value, json};

struct Poller;

impl Plugin for Poller {
    fn handle(_event: Event) -> Result<Decision, PluginError> {
        Ok(Decision::Skip)
    }

    fn scheduled(name: &str) -> Result<Decision, PluginError> {
        let api = config::require("api")?;
        let jobs: Vec<Value> = http::get(&format!("{api}/jobs?schedule={name}"))?
            .error_for_status()?
            .json()?;
        let mut stored = 0;
        for job in &jobs {
            let (Some(key), Some(id)) = (job["key"].as_str(), job["id"].as_str()) else {
                return Err(PluginError::fatal("a job without key or id"));
            };
            let body = json!({"id": key, "event": "job.updated", "data": {"id": id}});
            let event = NewEvent::new("job.updated", key)
                .entity("job", id)
                .json(&body);
            if emit::emit(event)? == emit::Emitted::Stored {
                stored += 1;
            }
        }
        if let Some(ms) = config::get("busy_ms").and_then(|v| v.parse::<u64>().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        Ok(Decision::Drop(format!(
            "{stored} of {} jobs new",
            jobs.len()
        )))
    }
}

fieldhook_guest::export_plugin!(Poller);
