//! `fieldhook plugin`: tools for plugin authors.
//!
//! - `check` validates a component against the WIT world and its manifest,
//!   without running it;
//! - `run` runs it locally on a sample event, or on an event the daemon
//!   stored, and shows everything it did (as text or JSON);
//! - `new` scaffolds a working plugin with its manifest and a sample event;
//! - `build` builds a plugin of any language from its directory.

mod build;
mod check;
mod new;
mod run;
mod sample;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use fieldhook_policy::manifest::Manifest;
use fieldhook_runtime::CodeCache;

#[derive(Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only complicate the clap derive"
)]
pub enum PluginCommand {
    /// Run a plugin locally on a sample event or a stored one, or one of its
    /// schedules (`--schedule`): prints the decision, every outbound
    /// request, the events a schedule emitted, the logs, and time, CPU time
    /// and memory against the limits.
    Run {
        /// The plugin's component (`.wasm`).
        component: PathBuf,
        /// Sample event: JSON with `source`, `kind`, `body`... (as written
        /// by `plugin new`), or any other file, taken as the raw body.
        #[arg(
            long,
            required_unless_present_any = ["event_id", "schedule"],
            conflicts_with_all = ["event_id", "schedule"]
        )]
        event: Option<PathBuf>,
        /// Run the manifest's schedule NAME (`scheduled`) instead of
        /// `handle`: the events it emits are recorded and shown, not stored.
        #[arg(long, value_name = "NAME", conflicts_with = "event_id")]
        schedule: Option<String>,
        /// Run on an event the daemon stored, by id (`evt_...`), read from
        /// the store of `--data-dir` or `--config` (stop the daemon first:
        /// it locks the store).
        #[arg(long, value_name = "ID")]
        event_id: Option<String>,
        /// The daemon's data directory (holding `db/`), for `--event-id`.
        #[arg(
            long,
            value_name = "DIR",
            requires = "event_id",
            conflicts_with = "config"
        )]
        data_dir: Option<PathBuf>,
        /// The daemon's configuration, to find its data directory for
        /// `--event-id`.
        #[arg(long, value_name = "FILE", requires = "event_id")]
        config: Option<PathBuf>,
        /// The plugin's manifest (limits, config); default: `plugin.toml`
        /// beside the component when there is one, else defaults.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Canned answers to the plugin's outbound HTTP (JSON list of
        /// `{method, url, status, headers, body}`); unmatched requests are
        /// denied. Without it, requests go through the daemon's policy.
        #[arg(long)]
        responses: Option<PathBuf>,
        /// Print one JSON document (plugin, event, outbound requests, logs,
        /// usage, decision or error) instead of the report.
        #[arg(long)]
        json: bool,
        /// The vendor the event came from (`housecall-pro`, `servicem8`,
        /// ...), so the SDKs' typed vendor views accept a raw body.
        #[arg(long, value_name = "VENDOR")]
        vendor: Option<String>,
        /// The source the event arrived on (a `[[sources]]` name); it
        /// decides which subscriptions match.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// The event's kind (`job.completed`); default: the sample's, or a
        /// raw body's `event` or `type` field.
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
    },
    /// Check a component against the WIT world and its manifest, without
    /// running it.
    Check {
        /// The plugin's component (`.wasm`).
        component: PathBuf,
        /// The plugin's manifest; default: `plugin.toml` beside the
        /// component when there is one.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Scaffold a new plugin: source, unit tests, manifest, a sample event,
    /// and the SDK and contract it builds with.
    New {
        /// Plugin name (`a-z`, `0-9`, `-`, `_`); also its directory.
        name: String,
        /// Language of the plugin.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// Where to create the plugin's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a plugin from its directory, whatever its language: Rust with
    /// cargo (wasm32-wasip2), JavaScript with the SDK's build script
    /// (componentize-js), Python with componentize-py. Says what to install
    /// when a tool is missing.
    Build {
        /// The plugin's directory (holding plugin.toml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Then copy the component and plugin.toml into this directory of
        /// a daemon's plugins_dir (`plugins/NAME`), which the daemon loads
        /// without a restart.
        #[arg(long)]
        install: Option<PathBuf>,
        /// Build (and install) again on every save, until interrupted: the
        /// edit-try loop against a running daemon.
        #[arg(long)]
        watch: bool,
    },
    /// List the `fieldhook:plugin` contract versions this fieldhook serves,
    /// with the SDKs that build each.
    Versions,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

pub async fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Run {
            component,
            event,
            event_id,
            schedule,
            data_dir,
            config,
            manifest,
            responses,
            json,
            vendor,
            source,
            kind,
        } => {
            let options = run::Options {
                manifest,
                responses,
                json,
                envelope: run::Envelope {
                    vendor,
                    source,
                    kind,
                },
            };
            if let Some(name) = schedule {
                return run::run_scheduled(&component, &name, &options).await;
            }
            let event = match (event, event_id) {
                (Some(file), _) => run::EventFrom::File(file),
                (None, Some(id)) => run::EventFrom::Store {
                    id,
                    data_dir: run::data_dir(data_dir, config.as_deref())?,
                },
                (None, None) => {
                    anyhow::bail!("give --event FILE, --event-id ID or --schedule NAME")
                }
            };
            run::run(&component, &event, &options).await
        }
        PluginCommand::Check {
            component,
            manifest,
        } => check::check(&component, manifest.as_deref()),
        PluginCommand::New { name, lang, dir } => new::new(&name, lang, &dir),
        PluginCommand::Build {
            dir,
            install,
            watch,
        } => {
            if watch {
                build::watch(&dir, install.as_deref())
            } else {
                build::build(&dir, install.as_deref())
            }
        }
        PluginCommand::Versions => {
            print!("{}", versions());
            Ok(())
        }
    }
}

/// One line per served contract version, newest first.
fn versions() -> String {
    use fieldhook_runtime::WitVersion;
    WitVersion::ALL
        .iter()
        .rev()
        .map(|v| {
            let (wit, builders) = match v {
                WitVersion::V0_3 => ("wit/0.3/plugin.wit", "Rust SDK (schedules)"),
                WitVersion::V0_2 => ("wit/0.2/plugin.wit", "JavaScript and Python SDKs"),
                WitVersion::V0_1 => (
                    "wit/0.1/plugin.wit",
                    "no SDK any more (built components still run)",
                ),
            };
            format!("{v}  {wit}  built by: {builders}\n")
        })
        .collect()
}

/// The manifest to use for a component: the given one, else `plugin.toml`
/// beside the component, else the `plugin.toml` of the current directory
/// when it names this component, else defaults named after the file. The component
/// given on the command line wins over the manifest's `component`.
fn manifest_for(component: &Path, manifest: Option<&Path>) -> anyhow::Result<Manifest> {
    let beside = component
        .parent()
        .map(|d| d.join("plugin.toml"))
        .filter(|p| p.is_file());
    // In a plugin's directory, its plugin.toml names a component elsewhere
    // (Rust: under target/): that manifest is the component's.
    let here = Path::new("plugin.toml");
    let names_it = || {
        let named = Manifest::load(here).ok()?.component.canonicalize().ok()?;
        (named == component.canonicalize().ok()?).then(|| here.to_owned())
    };
    let mut m = match manifest.map(Path::to_owned).or(beside).or_else(names_it) {
        Some(path) => Manifest::load(&path)?,
        None => {
            let stem = component
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("plugin");
            let name: String = stem
                .chars()
                .map(|c| c.to_ascii_lowercase())
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let text = format!(
                "name = \"{name}\"\nversion = \"0.0.0\"\n[[subscriptions]]\nsource = \"*\"\n"
            );
            Manifest::parse(&text, &component.with_file_name("plugin.toml"))?
        }
    };
    m.component = component.to_owned();
    Ok(m)
}

/// Whether a plugin's `[[http]]` grants allow one request, as the tools
/// report it: the rule that allows it, or why not and the rule to add.
#[derive(Debug, Clone, serde::Serialize)]
struct GrantInfo {
    allowed: bool,
    /// 1-based position in plugin.toml's `[[http]]` of the allowing rule.
    rule: Option<usize>,
    /// The allowing rule's TOML, or the rule to add to allow it.
    toml: Option<String>,
    /// Why the daemon would refuse it.
    reason: Option<String>,
}

fn grant_info(manifest: &Manifest, method: &str, url: &str) -> GrantInfo {
    use fieldhook_policy::grants::{Denied, Target};
    let checked = match Target::parse(method, url) {
        Ok(t) => manifest
            .http
            .check(&t)
            .map(|g| (manifest.http.index_of(&g), g.rule.to_toml())),
        Err(e) => Err(e),
    };
    match checked {
        Ok((index, toml)) => GrantInfo {
            allowed: true,
            rule: index.map(|i| i + 1),
            toml: Some(toml),
            reason: None,
        },
        Err(denied) => {
            let (reason, toml) = match &denied {
                Denied::NotGranted { suggestion, .. } => (
                    "no [[http]] rule of plugin.toml grants it".to_owned(),
                    Some(suggestion.clone()),
                ),
                Denied::PrivateAddress {
                    host,
                    ip,
                    suggestion,
                } => (
                    format!("{host} is {ip}, a non-public address only a rule naming it allows"),
                    Some(suggestion.clone()),
                ),
                other => (other.to_string(), None),
            };
            GrantInfo {
                allowed: false,
                rule: None,
                toml,
                reason: Some(reason),
            }
        }
    }
}

/// The grant verdict as indented report lines.
fn grant_lines(g: &GrantInfo, indent: &str) -> String {
    let mut out = String::new();
    if g.allowed {
        let rule = g.rule.map(|r| format!(" {r}")).unwrap_or_default();
        let first = g.toml.as_deref().unwrap_or("").lines().skip(1);
        let summary: Vec<&str> = first.collect();
        out.push_str(&format!(
            "{indent}allowed by [[http]] rule{rule} ({})\n",
            summary.join(", ")
        ));
        return out;
    }
    out.push_str(&format!(
        "{indent}NOT GRANTED: the daemon would refuse it: {}\n",
        g.reason.as_deref().unwrap_or("refused")
    ));
    if let Some(toml) = &g.toml {
        out.push_str(&format!("{indent}to allow it, add to plugin.toml:\n"));
        for line in toml.lines() {
            out.push_str(&format!("{indent}  {line}\n"));
        }
    }
    out
}

/// Compiled code for the tools, kept between runs.
fn tool_cache() -> CodeCache {
    CodeCache::new(&std::env::temp_dir().join("fieldhook-compiled"))
}

fn read_component(component: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(component)
        .with_context(|| format!("cannot read component {}", component.display()))
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
