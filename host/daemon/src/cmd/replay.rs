//! `fieldhook replay`: run work again by event, from the dead-letter queue,
//! or by source and time range.

use std::path::Path;

use anyhow::bail;
use fieldhook::admin::client::AdminClient;
use fieldhook_core::time::now_ms;
use fieldhook_pipeline::replay::parse_time;
use serde_json::json;

pub struct Replay {
    pub event: Option<String>,
    pub dlq: bool,
    pub filter: super::dlq::Filter,
    pub from: Option<String>,
    pub to: Option<String>,
}

pub async fn replay(config: &Path, r: Replay) -> anyhow::Result<()> {
    let body = match (&r.event, r.dlq, &r.from) {
        (Some(id), false, None) => json!({ "event_id": id }),
        (None, true, None) => json!({ "dlq": {
            "topic": r.filter.topic, "plugin": r.filter.plugin,
            "source": r.filter.source, "reason": r.filter.reason,
        }}),
        (None, false, Some(from)) => {
            let now = now_ms();
            let from = parse_time(from, now).map_err(anyhow::Error::msg)?;
            let to = match &r.to {
                Some(t) => parse_time(t, now).map_err(anyhow::Error::msg)?,
                None => now + 1,
            };
            json!({ "source": r.filter.source, "from_ms": from, "to_ms": to })
        }
        _ => bail!(
            "give exactly one of --event ID, --dlq [filters], or --from TIME [--to TIME] [--source S]"
        ),
    };
    let client = AdminClient::from_config(config)?;
    let v = client.post("/replay", &body).await?;
    println!(
        "replayed: {} events, {} jobs, {} deliveries",
        v["events"], v["jobs"], v["deliveries"]
    );
    if let Some(missing) = v["missing"].as_array().filter(|m| !m.is_empty()) {
        println!(
            "not stored (expired or unknown): {}",
            serde_json::to_string(missing)?
        );
    }
    Ok(())
}
