//! `fieldhook events`: list stored events, or show one with its work.

use std::path::Path;

use fieldhook::admin::client::AdminClient;

pub async fn events(
    config: &Path,
    id: Option<String>,
    source: Option<String>,
    after: Option<String>,
    limit: usize,
) -> anyhow::Result<()> {
    let client = AdminClient::from_config(config)?;
    if let Some(id) = id {
        let v = client.get(&format!("/events/{}", encode(&id))).await?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut q = format!("/events?limit={limit}");
    if let Some(s) = source {
        q.push_str(&format!("&source={}", encode(&s)));
    }
    if let Some(a) = after {
        q.push_str(&format!("&after={}", encode(&a)));
    }
    let v = client.get(&q).await?;
    println!(
        "{:<31} {:<14} {:<28} {:<24} bytes",
        "id", "source", "kind", "entity"
    );
    for e in v["events"].as_array().into_iter().flatten() {
        let entity = match (&e["entity"]["kind"], &e["entity"]["id"]) {
            (serde_json::Value::String(k), serde_json::Value::String(i)) => format!("{k}:{i}"),
            _ => "-".into(),
        };
        println!(
            "{:<31} {:<14} {:<28} {:<24} {}",
            e["id"].as_str().unwrap_or(""),
            e["source"].as_str().unwrap_or(""),
            e["kind"].as_str().unwrap_or(""),
            entity,
            e["bytes"]
        );
    }
    Ok(())
}

/// Percent-encodes a query or path value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
