//! The `fieldhook` command.

mod cmd;

// glibc malloc was about 15% of the ingest path's CPU (lock contention,
// consolidation, page faults from trimming); mimalloc keeps per-thread heaps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fieldhook",
    version,
    about = "Webhooks from field-service platforms, verified, stored durably, and run through WebAssembly plugins"
)]
struct Cli {
    /// Log lines as text (for people) or JSON (one object per line, for
    /// log collectors). `FIELDHOOK_LOG` sets the level filter.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FIELDHOOK_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Write a starter configuration with generated secrets (an admin
    /// token, a Standard Webhooks source) and a plugins directory into DIR,
    /// then print the next commands. Never overwrites.
    Init {
        /// Directory to write into (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Webhook listener address (default 127.0.0.1:8080; a container
        /// wants 0.0.0.0:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Store directory (default `data` beside the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
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
    /// List stored events (newest last), or show one with its jobs and
    /// deliveries. Talks to the admin API (`[admin]` in the config).
    Events {
        /// Configuration file of the daemon.
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        /// Show this event.
        id: Option<String>,
        /// Only events of this source.
        #[arg(long)]
        source: Option<String>,
        /// Start after this event id (paging).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// List the dead-letter queue: what gave up, why, and its attempts.
    Dlq {
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        #[command(flatten)]
        filter: cmd::dlq::Filter,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the full records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run work again: one event (`--event`), the dead-letter queue
    /// (`--dlq`, optionally filtered), or a source's events in a time range
    /// (`--from`, `--to`: RFC 3339, Unix ms, or an age like `2h`).
    Replay {
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        dlq: bool,
        // With `--dlq`, which dead letters; `--source` also selects the
        // source of a time-range replay.
        #[command(flatten)]
        filter: cmd::dlq::Filter,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
    /// Every plugin of the running daemon: loaded (version, contract,
    /// instances) or failing to load, and why.
    Plugins {
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        /// Print the admin API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Each schedule of the running daemon's plugins: next due time, and
    /// its last run's time and outcome.
    Schedules {
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        /// Print the admin API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Queue depth, dead letters, counters and circuits.
    Stats {
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        /// Print the Prometheus metrics instead.
        #[arg(long)]
        metrics: bool,
    },
    /// Whether the running daemon is alive (`/healthz`) or, with
    /// `--ready`, ready for webhooks (`/readyz`: not while starting,
    /// stopping, or while its store cannot write). Exit 0 yes, 1 no.
    Health {
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        #[arg(long)]
        ready: bool,
    },
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// List every problem of a configuration file with its key path and
    /// the fix. Exits 0 when valid, 78 (EX_CONFIG) when not.
    Check {
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Check the store's invariants without changing anything (stop the
    /// daemon first). Exits non-zero when a problem is found.
    Verify {
        /// The daemon's data_dir.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Have the running daemon write a consistent copy of its store into
    /// DEST (a new or empty directory). Restore: stop the daemon, put DEST
    /// in place of its data_dir, start it. Talks to the admin API.
    Backup {
        #[arg(long, short, default_value = "fieldhook.toml")]
        config: PathBuf,
        /// Directory to write (on the daemon's machine).
        dest: PathBuf,
    },
}

/// Async worker threads: `TOKIO_WORKER_THREADS` when set, else three per
/// core. Plugin runs and store writes hold a worker for tens of
/// microseconds at a time; with one worker per core a held worker leaves
/// its core's other tasks waiting and the rest of the time is spent
/// parking and waking workers across cores. On the whole-path benchmark
/// (two cores) three per core delivered about 20 % more events with
/// about 15 % less CPU per event than one per core.
fn worker_threads() -> usize {
    if let Some(n) = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_mul(3).max(4)
}

fn main() -> anyhow::Result<()> {
    // First, before the heap grows.
    let huge_pages = fieldhook::memory::disable_transparent_huge_pages();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIELDHOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // Fields at the top level beside `timestamp`, `level`, `target` and
        // `message`, as log collectors index them.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    if let Err(e) = huge_pages {
        tracing::warn!(error = %e, "cannot turn off transparent huge pages; expect latency spikes as the store grows");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Init {
            dir,
            listen,
            data_dir,
        } => cmd::init::init(&dir, listen.as_deref(), data_dir.as_deref()),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => std::process::exit(cmd::config::check(&config)),
        Command::Serve { config } => {
            let served = rt.block_on(cmd::serve::serve(config));
            // Work still running on the blocking pool (a flush the disk
            // refuses, a plugin compile) must not keep a stopping daemon
            // alive: whatever it did not finish is redone after restart.
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            served
        }
        Command::Send {
            config,
            source,
            body_file,
            url,
        } => rt.block_on(cmd::send::send(config, source, body_file, url)),
        Command::Verify(args) => std::process::exit(cmd::verify::verify(args)),
        Command::Plugin { command } => rt.block_on(cmd::plugin::plugin(command)),
        Command::Events {
            config,
            id,
            source,
            after,
            limit,
        } => rt.block_on(cmd::events::events(&config, id, source, after, limit)),
        Command::Dlq {
            config,
            filter,
            limit,
            json,
        } => rt.block_on(cmd::dlq::dlq(&config, filter, limit, json)),
        Command::Replay {
            config,
            event,
            dlq,
            filter,
            from,
            to,
        } => rt.block_on(cmd::replay::replay(
            &config,
            cmd::replay::Replay {
                event,
                dlq,
                filter,
                from,
                to,
            },
        )),
        Command::Health { config, ready } => {
            std::process::exit(rt.block_on(cmd::health::health(&config, ready)))
        }
        Command::Plugins { config, json } => rt.block_on(cmd::plugins::plugins(&config, json)),
        Command::Schedules { config, json } => {
            rt.block_on(cmd::schedules::schedules(&config, json))
        }
        Command::Stats { config, metrics } => rt.block_on(cmd::stats::stats(&config, metrics)),
        Command::Store {
            command: StoreCommand::Verify { data_dir },
        } => cmd::store::verify(&data_dir),
        Command::Store {
            command: StoreCommand::Backup { config, dest },
        } => rt.block_on(cmd::store::backup(&config, &dest)),
    }
}
