//! Maps a completed job (Housecall Pro or Standard Webhooks) to a JSON POST
//! for an accounting system. Manifest `[config]`: `endpoint` (required) and
//! `currency` (default `USD`).

use fieldhook_guest::{Decision, Event, Plugin, PluginError, Request, config};
use serde_json::{Value, json};

struct AccountingSync;

impl Plugin for AccountingSync {
    fn filter(event: &Event) -> bool {
        event.kind() == "job.completed"
    }

    fn handle(event: Event) -> Result<Decision, PluginError> {
        let endpoint = config::require("endpoint")?;
        let currency = config::get("currency").unwrap_or_else(|| "USD".into());
        let record = accounting_record(&event.body_json()?, &event, &currency)?;
        let request = Request::post(endpoint)
            .json(&record)
            .idempotency_key(format!("accounting-sync:{}", event.id()));
        Ok(Decision::deliver([request]))
    }
}

fieldhook_guest::export_plugin!(AccountingSync);

/// The accounting record for a job-completed body: Housecall Pro puts the job
/// under `job`, Standard Webhooks under `data`. Missing fields become null.
fn accounting_record(body: &Value, event: &Event, currency: &str) -> Result<Value, PluginError> {
    let job = [&body["job"], &body["data"]["job"], &body["data"]]
        .into_iter()
        .find(|v| v.is_object())
        .ok_or_else(|| PluginError::fatal("body has no job object (expected `job` or `data`)"))?;
    if job["id"].is_null() {
        return Err(PluginError::fatal("job object has no `id`"));
    }
    let customer = &job["customer"];
    let occurred_at = first_str([&body["event_occurred_at"], &body["timestamp"]]);
    Ok(json!({
        "external_id": job["id"],
        "invoice_number": job["invoice_number"],
        "customer": { "id": customer["id"], "name": customer_name(customer), "email": customer["email"] },
        "total_cents": job["total_amount"],
        "currency": currency,
        "occurred_at": occurred_at.or(event.occurred_at()),
        "source": event.source(),
        "fieldhook_event_id": event.id(),
    }))
}

/// `first_name last_name`, else `name`, else `company`, else none.
fn customer_name(customer: &Value) -> Option<String> {
    let parts =
        [&customer["first_name"], &customer["last_name"]].map(|v| v.as_str().unwrap_or("").trim());
    let full = parts.join(" ").trim().to_string();
    match full.is_empty() {
        true => first_str([&customer["name"], &customer["company"]]).map(String::from),
        false => Some(full),
    }
}

fn first_str<const N: usize>(values: [&Value; N]) -> Option<&str> {
    values.into_iter().find_map(Value::as_str)
}

#[cfg(test)]
mod tests;
