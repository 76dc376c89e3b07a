//! `fieldhook stats`: queue depth, dead letters, counters; `--metrics`
//! prints the Prometheus text instead.

use std::path::Path;

use fieldhook::admin::client::AdminClient;

pub async fn stats(config: &Path, metrics: bool) -> anyhow::Result<()> {
    let client = AdminClient::from_config(config)?;
    if metrics {
        print!("{}", client.get_text("/metrics").await?);
        return Ok(());
    }
    let v = client.get("/stats").await?;
    println!("received: {}   rejected: {}", v["received"], v["rejected"]);
    for (topic, states) in v["tasks"].as_object().into_iter().flatten() {
        println!(
            "{topic:<11} ready {:<6} leased {:<6} done {:<8} dead {}",
            states["ready"], states["leased"], states["done"], states["dead"]
        );
    }
    println!("dead letters: {}", v["dlq"]);
    for d in v["destinations"].as_array().into_iter().flatten() {
        println!(
            "destination {} circuit {} in flight {}",
            d["origin"].as_str().unwrap_or(""),
            d["circuit"].as_str().unwrap_or(""),
            d["in_flight"]
        );
    }
    println!(
        "group commit: {} writes in {} flushes",
        v["writes"], v["flushes"]
    );
    Ok(())
}
