//! The `fieldhook` command.

mod cmd;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    /// Check a captured webhook against a vendor verifier and say why it is
    /// accepted or rejected (exit 0 accepted, 1 rejected, 2 bad invocation).
    Verify(cmd::verify::VerifyArgs),
    /// Tools for plugin authors: run, check, new.
    Plugin {
        #[command(subcommand)]
        command: cmd::plugin::PluginCommand,
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
        Command::Serve { config } => rt.block_on(cmd::serve::serve(config)),
        Command::Send {
            config,
            source,
            body_file,
            url,
        } => rt.block_on(cmd::send::send(config, source, body_file, url)),
        Command::Verify(args) => std::process::exit(cmd::verify::verify(args)),
        Command::Plugin { command } => rt.block_on(cmd::plugin::plugin(command)),
    }
}

