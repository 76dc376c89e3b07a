//! `fieldhook dlq`: list dead-lettered jobs and deliveries with the reason.

use std::path::Path;

use fieldhook::admin::client::AdminClient;

use super::events::encode;

/// Which dead letters: the flags `fieldhook dlq` and `fieldhook replay --dlq` share.
#[derive(clap::Args)]
pub struct Filter {
    /// `jobs` or `deliveries`.
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub plugin: Option<String>,
    #[arg(long)]
    pub source: Option<String>,
    /// Only those whose reason contains this text.
    #[arg(long)]
    pub reason: Option<String>,
}

pub async fn dlq(config: &Path, f: Filter, limit: usize, json: bool) -> anyhow::Result<()> {
    let client = AdminClient::from_config(config)?;
    let mut q = format!("/dlq?limit={limit}");
    for (k, v) in [
        ("topic", &f.topic),
        ("plugin", &f.plugin),
        ("source", &f.source),
        ("reason", &f.reason),
    ] {
        if let Some(v) = v {
            q.push_str(&format!("&{k}={}", encode(v)));
        }
    }
    let v = client.get(&q).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let list = v["dead_letters"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("the dead-letter queue is empty");
    }
    for d in list {
        println!(
            "{} {} (plugin {}, {} attempts)\n  reason: {}",
            d["topic"].as_str().unwrap_or(""),
            d["id"].as_str().unwrap_or(""),
            d["plugin"].as_str().unwrap_or("-"),
            d["history"].as_array().map_or(0, Vec::len),
            d["reason"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
