//! Reloading the configuration without a restart: SIGHUP, or
//! `POST /reload` on the admin API.
//!
//! Sources, credentials, destinations, the sandbox and retention change in
//! place; each is replaced whole, so a request or plugin call in progress
//! finishes under the configuration it started with. A file with any
//! problem changes nothing: the configuration in force stays, and the
//! answer (and the log) lists every problem. Settings bound to sockets,
//! directories or worker pools (`listen`, `data_dir`, `plugins_dir`,
//! `[workers]`, `[ingress]`, `[admin]`, `max_body_bytes`, `dedupe_window_secs`) take
//! effect at the next restart, which the answer says.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::watch;

use fieldhook_capabilities::InForce;
use fieldhook_credentials::{Credentials, TokenTree};
use fieldhook_pipeline::Pipeline;
use fieldhook_pipeline::retention::Retention;

use crate::config::{Config, Problem};
use crate::ingress::LiveSources;

/// A reload that changed nothing, and why.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: not reloaded, configuration {generation} stays in force: {}",
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct ReloadError {
    /// The configuration file.
    pub path: PathBuf,
    /// The generation still in force.
    pub generation: u64,
    /// Every problem of the file.
    pub problems: Vec<Problem>,
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// The generation now in force (1 is the one the daemon started with).
    pub generation: u64,
    /// Changed settings that wait for a restart.
    pub at_restart: Vec<&'static str>,
}

/// Reloads the daemon's configuration file into the running daemon.
pub struct Reloader {
    path: PathBuf,
    generation: AtomicU64,
    /// The configuration in force; also serialises reloads.
    running: tokio::sync::Mutex<Config>,
    sources: LiveSources,
    capabilities: InForce,
    pipeline: Arc<Pipeline>,
    retention: watch::Sender<Retention>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for the daemon started from `config` (generation 1), read
    /// again from `path`.
    pub(crate) fn new(
        path: PathBuf,
        config: Config,
        sources: LiveSources,
        capabilities: InForce,
        pipeline: Arc<Pipeline>,
        retention: watch::Sender<Retention>,
    ) -> Self {
        Self {
            path,
            generation: AtomicU64::new(1),
            running: tokio::sync::Mutex::new(config),
            sources,
            capabilities,
            pipeline,
            retention,
        }
    }

    /// The generation in force.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Reads the file again and puts it in force, or changes nothing and
    /// says why.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let mut running = self.running.lock().await;
        let refused = |problems| {
            let e = ReloadError {
                path: self.path.clone(),
                generation: self.generation(),
                problems,
            };
            tracing::error!(generation = e.generation, "{e}");
            e
        };
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            refused(vec![Problem {
                key: "(file)".into(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        let base = self.path.parent().unwrap_or(std::path::Path::new("."));
        let problems = Config::problems(&text, base);
        if !problems.is_empty() {
            return Err(refused(problems));
        }
        let new = Config::parse(&text, base).map_err(|e| {
            refused(vec![Problem {
                key: "(file)".into(),
                message: e.to_string(),
            }])
        })?;
        let at_restart = at_restart(&running, &new);

        self.sources.replace(&new.sources);
        self.pipeline
            .schedules
            .set_sources(crate::ingress::source::vendors_by_source(&new.sources));
        let credentials = Credentials::new(
            new.credentials.clone(),
            TokenTree::open(&self.pipeline.store).ok(),
        );
        let caps = Arc::new(
            self.capabilities
                .get()
                .reconfigured(new.sandbox.clone(), credentials),
        );
        for plugin in self.pipeline.plugins.snapshot().values() {
            if let Err(why) = caps.check_manifest(&plugin.manifest) {
                tracing::error!(plugin = %plugin.manifest.name, "{why}");
            }
        }
        self.capabilities.replace(caps);
        self.pipeline
            .destinations
            .reconfigure(&new.delivery, &new.destinations);
        self.retention.send_replace(new.retention.clone());
        *running = new;
        let generation = self
            .generation
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        tracing::info!(
            generation,
            path = %self.path.display(),
            ?at_restart,
            "configuration reloaded"
        );
        Ok(Reloaded {
            generation,
            at_restart,
        })
    }
}

/// The settings that differ between `old` and `new` but only change at a
/// restart.
fn at_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listen != new.listen {
        out.push("listen");
    }
    if old.data_dir != new.data_dir {
        out.push("data_dir");
    }
    if old.plugins_dir != new.plugins_dir {
        out.push("plugins_dir");
    }
    if old.max_body_bytes != new.max_body_bytes {
        out.push("max_body_bytes");
    }
    if old.dedupe_window_secs != new.dedupe_window_secs {
        out.push("dedupe_window_secs");
    }
    if format!("{:?}", old.workers) != format!("{:?}", new.workers) {
        out.push("workers");
    }
    if format!("{:?}", old.ingress) != format!("{:?}", new.ingress) {
        out.push("ingress");
    }
    if old.admin.as_ref().map(|a| (a.listen, &a.token))
        != new.admin.as_ref().map(|a| (a.listen, &a.token))
    {
        out.push("admin");
    }
    out
}
