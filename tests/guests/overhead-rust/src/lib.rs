//! Benchmark fixture (`fieldhook-bench plugin-overhead`): keep a completed
//! job, map it to a small record, deliver it to `config.endpoint`. The JS and
//! Python fixtures beside this one do exactly the same.

use fieldhook_guest::{Decision, Event, Plugin, PluginError, Request, config};
use serde_json::json;

struct Overhead;

impl Plugin for Overhead {
    fn filter(event: &Event) -> bool {
        event.kind() == "job.completed"
    }

    fn handle(event: Event) -> Result<Decision, PluginError> {
        let body = event.body_json()?;
        let job = &body["job"];
        let customer = &job["customer"];
        let name = format!(
            "{} {}",
            customer["first_name"].as_str().unwrap_or(""),
            customer["last_name"].as_str().unwrap_or("")
        );
        let record = json!({
            "external_id": job["id"],
            "invoice_number": job["invoice_number"],
            "customer": name.trim(),
            "total_cents": job["total_amount"],
            "occurred_at": body["event_occurred_at"],
            "event_id": event.id(),
        });
        let request = Request::post(config::require("endpoint")?)
            .json(&record)
            .idempotency_key(format!("overhead:{}", event.id()));
        Ok(Decision::deliver([request]))
    }
}

fieldhook_guest::export_plugin!(Overhead);
