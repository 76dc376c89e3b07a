//! `fieldhook schedules`: the running daemon's schedules, from
//! `GET /schedules`.

use std::path::Path;

use fieldhook::admin::client::AdminClient;
use fieldhook::admin::console::format::time;
use serde_json::Value;

pub async fn schedules(config: &Path, json: bool) -> anyhow::Result<()> {
    let v = AdminClient::from_config(config)?.get("/schedules").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render(&v));
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn at(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".to_owned(), |ms| format!("{} UTC", time(ms)))
}

/// A header, then one line per schedule: plugin, name, next due, last run
/// and what it did.
fn render(v: &Value) -> String {
    let list = v["schedules"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if list.is_empty() {
        return "no schedules (no loaded plugin declares [[schedules]])\n".to_owned();
    }
    let mut out = format!(
        "{:<20} {:<16} {:<24} {:<24} {}\n",
        "PLUGIN", "SCHEDULE", "NEXT DUE", "LAST RUN", "OUTCOME"
    );
    for s in list {
        let outcome = match (s["last_state"].as_str(), s["last_outcome"].as_str()) {
            (None, _) => "not run yet".to_owned(),
            (Some(state), Some(outcome)) => format!("{state}: {outcome}"),
            (Some(state), None) => state.to_owned(),
        };
        out.push_str(&format!(
            "{:<20} {:<16} {:<24} {:<24} {outcome}\n",
            text(&s["plugin"]),
            text(&s["schedule"]),
            at(&s["next_due_ms"]),
            at(&s["last_run_ms"]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_schedule_is_a_line_with_its_next_due_time_and_last_run() {
        let v = json!({"schedules": [
            {"plugin": "poller", "schedule": "reconcile", "next_due_ms": 1_795_000_000_000u64,
             "last_run_ms": 1_794_999_700_000u64, "last_state": "done",
             "last_outcome": "ran: 2 of 2 jobs new"},
            {"plugin": "poller", "schedule": "nightly", "next_due_ms": null,
             "last_run_ms": null, "last_state": null, "last_outcome": null}
        ]});
        let text = render(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("PLUGIN"), "{text}");
        assert!(lines[1].starts_with("poller"), "{text}");
        assert!(lines[1].contains("reconcile"), "{text}");
        assert!(lines[1].contains("2026-11-18 11:06:40 UTC"), "{text}");
        assert!(lines[1].ends_with("done: ran: 2 of 2 jobs new"), "{text}");
        assert!(lines[2].ends_with("not run yet"), "{text}");
        assert_eq!(
            render(&json!({"schedules": []})),
            "no schedules (no loaded plugin declares [[schedules]])\n"
        );
    }
}
