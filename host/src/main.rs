//! The `fieldhook` command.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use fieldhook::config::Config;
use fieldhook::daemon::Daemon;

#[derive(Parser)]
#[command(name = "fieldhook", version, about = "Webhooks from field-service platforms, verified, stored durably, and run through WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
    },
    /// Sign a sample body with a source's secret and POST it to a running
    /// daemon, as the vendor would.
    Send {
        /// Configuration file of the daemon.
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        /// Source to send as.
        #[arg(long)]
        source: String,
        /// Body to send.
        #[arg(long)]
        body_file: PathBuf,
        /// Daemon URL (default: the configured listen address).
        #[arg(long)]
        url: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIELDHOOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve { config } => rt.block_on(serve(config)),
        Command::Send {
            config,
            source,
            body_file,
            url,
        } => rt.block_on(send(config, source, body_file, url)),
    }
}

async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let daemon = Daemon::start(config).await?;
    for f in &daemon.load_failures {
        eprintln!("plugin in {} not loaded: {}", f.dir.display(), f.reason);
    }
    // Machine-readable: tests and scripts wait for this line.
    println!("fieldhook listening on http://{}", daemon.addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    daemon.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn send(config_path: PathBuf, source: String, body_file: PathBuf, url: Option<String>) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let Some(src) = config.source(&source) else {
        bail!("no source named `{source}` in {}", config_path.display());
    };
    let body = std::fs::read(&body_file).with_context(|| format!("cannot read {}", body_file.display()))?;
    let now = fieldhook::ingress::vendors::Inbound::now_unix();
    let Some(signed) = src.vendor.sign_sample(&body, now) else {
        bail!("`fieldhook send` cannot sign for vendor `{}`", src.vendor.name());
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
    let resp = req.send().await.with_context(|| format!("cannot reach {target}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("POST {target} -> {status}\n{}", text.trim_end());
    if !status.is_success() {
        bail!("the daemon did not accept the webhook");
    }
    Ok(())
}
