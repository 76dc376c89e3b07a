//! `fieldhook send`: sign a sample body as the source's vendor would and
//! POST it to a running daemon.

use std::path::PathBuf;

use anyhow::{Context, bail};
use fieldhook::config::Config;

pub async fn send(
    config_path: PathBuf,
    source: String,
    body_file: PathBuf,
    url: Option<String>,
) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let Some(src) = config.source(&source) else {
        bail!("no source named `{source}` in {}", config_path.display());
    };
    let body = std::fs::read(&body_file)
        .with_context(|| format!("cannot read {}", body_file.display()))?;
    let now = fieldhook_vendors::Inbound::now_unix();
    let Some(signed) = src.vendor.sign_sample(&body, now) else {
        bail!(
            "`fieldhook send` cannot sign for vendor `{}`",
            src.vendor.name()
        );
    };
    let base = url.unwrap_or_else(|| format!("http://{}", config.listen));
    let target = match &signed.path_token {
        Some(token) => format!("{base}/hooks/{source}/{token}"),
        None => format!("{base}/hooks/{source}"),
    };
    let mut req = reqwest::Client::new().post(&target).body(body);
    for (k, v) in &signed.headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    // The URL token is a secret: show where it went, not what it is.
    let shown = match &signed.path_token {
        Some(token) => target.replace(token.as_str(), "<token>"),
        None => target.clone(),
    };
    println!("POST {shown} -> {status}\n{}", text.trim_end());
    if !status.is_success() {
        bail!("the daemon did not accept the webhook");
    }
    Ok(())
}
