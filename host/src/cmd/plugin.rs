//! `fieldhook plugin`: tools for plugin authors.
//!
//! - `check` validates a component against the WIT world and its manifest,
//!   without running it;
//! - `run` runs it locally on a sample event and shows everything it did;
//! - `new` scaffolds a working plugin with its manifest and a sample event.

mod check;
mod new;
mod run;
mod sample;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use fieldhook::manifest::Manifest;
use fieldhook::runtime::CodeCache;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Run a plugin locally on a sample event: prints the decision, every
    /// outbound request, the logs, and time and memory against the limits.
    Run {
        /// The plugin's component (`.wasm`).
        component: PathBuf,
        /// Sample event: JSON with `source`, `kind`, `body`... (as written
        /// by `plugin new`), or any other file, taken as the raw body.
        #[arg(long)]
        event: PathBuf,
        /// The plugin's manifest (limits, config); default: `plugin.toml`
        /// beside the component when there is one, else defaults.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Canned answers to the plugin's outbound HTTP (JSON list of
        /// `{method, url, status, headers, body}`); unmatched requests are
        /// denied. Without it, requests go through the daemon's policy.
        #[arg(long)]
        responses: Option<PathBuf>,
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
    /// Scaffold a new plugin: source, manifest and a sample event.
    New {
        /// Plugin name (`a-z`, `0-9`, `-`, `_`); also its directory.
        name: String,
        /// Language of the plugin.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// Where to create the plugin's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The `fieldhook-guest` SDK (Rust); default: the one in this
        /// fieldhook checkout.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
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
            manifest,
            responses,
        } => {
            run::run(
                &component,
                &event,
                manifest.as_deref(),
                responses.as_deref(),
            )
            .await
        }
        PluginCommand::Check {
            component,
            manifest,
        } => check::check(&component, manifest.as_deref()),
        PluginCommand::New {
            name,
            lang,
            dir,
            sdk,
        } => new::new(&name, lang, &dir, sdk.as_deref()),
    }
}

/// The manifest to use for a component: the given one, else `plugin.toml`
/// beside the component, else defaults named after the file. The component
/// given on the command line wins over the manifest's `component`.
fn manifest_for(component: &Path, manifest: Option<&Path>) -> anyhow::Result<Manifest> {
    let beside = component
        .parent()
        .map(|d| d.join("plugin.toml"))
        .filter(|p| p.is_file());
    let mut m = match manifest.map(Path::to_owned).or(beside) {
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
