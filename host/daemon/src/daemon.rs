//! Wires the daemon together: store, queue, runtime, plugins, workers and
//! the webhook listener, with graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use fieldhook_capabilities::{Capabilities, InForce};
use fieldhook_core::time::now_ms;
use fieldhook_credentials::{Credentials, TokenTree};
use fieldhook_pipeline::Pipeline;
use fieldhook_pipeline::delivery::{Deliverer, DeliveryGuard};
use fieldhook_pipeline::metrics::Metrics;
use fieldhook_pipeline::policy::{Destinations, JobPolicies};
use fieldhook_pipeline::schedules::Schedules;
use fieldhook_runtime::directory::{self, LoadFailure, PluginSet};
use fieldhook_runtime::{CodeCache, Runtime};
use fieldhook_store::EventStore;
use fieldhook_store::queue::{Queue, TaskLog};

use crate::config::Config;
use crate::ingress::{self, IngressSettings, LiveSources, StoreSink};
use crate::listener::{self, ConnectionLimits};
use crate::open_files;
use crate::reload::Reloader;

/// Failures to start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened.
    #[error("cannot open the store in {dir}: {source}")]
    Store {
        /// Data directory.
        dir: std::path::PathBuf,
        /// Underlying error.
        source: fieldhook_store::StoreError,
    },
    /// The queue could not be opened or recovered.
    #[error("cannot open the queue: {0}")]
    Queue(#[from] fieldhook_store::queue::QueueError),
    /// The plugin runtime could not start.
    #[error(transparent)]
    Runtime(#[from] fieldhook_runtime::RuntimeError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// A running daemon.
pub struct Daemon {
    /// The address the webhook listener is bound to.
    pub addr: SocketAddr,
    /// Plugins that failed to load at start.
    pub load_failures: Vec<LoadFailure>,
    /// The address the admin API is bound to, when `[admin]` is configured.
    pub admin_addr: Option<SocketAddr>,
    /// Reloads the configuration file; `None` when started from a
    /// configuration that has no file.
    pub reloader: Option<Arc<Reloader>>,
    ready: Arc<AtomicBool>,
    /// Shared pipeline (store, queue, plugins).
    pub pipeline: Arc<Pipeline>,
    /// Hot load: `None` when the plugins directory cannot be watched.
    _plugins_watch: Option<directory::Watcher>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Opens the store, loads plugins, starts workers and the listener.
    pub async fn start(config: Config) -> Result<Self, DaemonError> {
        Self::start_inner(config, None).await
    }

    /// [`start`](Self::start) from the configuration file at `path`, which
    /// [`Reloader::reload`] (SIGHUP, `POST /reload`) reads again.
    pub async fn start_from(config: Config, path: PathBuf) -> Result<Self, DaemonError> {
        Self::start_inner(config, Some(path)).await
    }

    async fn start_inner(config: Config, path: Option<PathBuf>) -> Result<Self, DaemonError> {
        let store =
            EventStore::open(&config.data_dir.join("db")).map_err(|source| DaemonError::Store {
                dir: config.data_dir.clone(),
                source,
            })?;
        let queue: Arc<dyn TaskLog> = Arc::new(Queue::open(&store).map_err(DaemonError::Queue)?);
        let recovered = queue.recover(now_ms())?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "re-queued work that was running when the daemon stopped"
            );
        }
        let credentials = Credentials::new(
            config.credentials.clone(),
            TokenTree::open(&store)
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "rotated OAuth tokens will not survive a restart")
                })
                .ok(),
        );
        let capabilities = InForce::new(Arc::new(Capabilities::new(
            config.sandbox.clone(),
            credentials,
            Some(&store),
        )));
        let runtime = Arc::new(Runtime::new(
            CodeCache::new(&config.data_dir.join("compiled")),
            capabilities.clone(),
        )?);
        let plugin_set = Arc::new(PluginSet::default());
        // A missing plugins directory is created, so plugins installed
        // later load without a restart.
        if let Err(e) = std::fs::create_dir_all(&config.plugins_dir) {
            tracing::warn!(dir = %config.plugins_dir.display(), error = %e, "cannot create the plugins directory");
        }
        // Watch before the first load, so nothing landing meanwhile is missed.
        let plugins_watch = directory::watch(
            runtime.clone(),
            config.plugins_dir.clone(),
            plugin_set.clone(),
        )
        .inspect_err(|e| {
            tracing::error!(
                dir = %config.plugins_dir.display(), error = %e,
                "cannot watch the plugins directory; plugins load at start only"
            )
        })
        .ok();
        let load_failures = {
            let runtime = runtime.clone();
            let set = plugin_set.clone();
            let dir = config.plugins_dir.clone();
            // Compiling may take seconds (JS, Python): keep it off the reactor.
            tokio::task::spawn_blocking(move || directory::load_dir(&runtime, &dir, &set))
                .await
                .unwrap_or_default()
        };
        for plugin in plugin_set.snapshot().values() {
            if let Err(why) = capabilities.get().check_manifest(&plugin.manifest) {
                tracing::error!(plugin = %plugin.manifest.name, "{why}");
            }
        }
        let metrics = Arc::new(Metrics::default());
        let pipeline = Arc::new(Pipeline {
            store: store.clone(),
            queue,
            plugins: plugin_set.clone(),
            runtime,
            delivery: Deliverer::new(
                config.delivery.clone(),
                DeliveryGuard::new(capabilities.clone(), plugin_set.clone()),
            )?,
            destinations: Destinations::new(&config.delivery, &config.destinations),
            entity_rules: config.entities.clone(),
            metrics: metrics.clone(),
            job_policies: JobPolicies::new(
                fieldhook_pipeline::MAX_JOB_ATTEMPTS,
                &config.delivery,
                &config.plugin_retries,
            ),
            inbox: Notify::new(),
            jobs: Notify::new(),
            deliveries: Notify::new(),
            schedules: Schedules::new(
                crate::ingress::source::vendors_by_source(&config.sources),
                config.dedupe_window_secs * 1000,
            ),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut workers = pipeline.spawn(
            config.workers.jobs,
            config.workers.deliveries,
            shutdown_rx.clone(),
        );
        let (retention, retention_rx) = watch::channel(config.retention.clone());
        {
            let p = pipeline.clone();
            let (window, stop) = (config.dedupe_window_secs * 1000, shutdown_rx.clone());
            workers.push(tokio::spawn(async move {
                p.retention_loop(retention_rx, window, stop).await
            }));
        }

        let wake = pipeline.clone();
        let sink = Arc::new(StoreSink {
            store,
            dedupe_window_ms: config.dedupe_window_secs * 1000,
            on_stored: Box::new(move || wake.inbox.notify_one()),
        });
        let ingress_settings = config.ingress();
        let sources = LiveSources::new(&config.sources);
        let app = ingress::router_with(&ingress_settings, sources.clone(), sink).layer(
            axum::middleware::from_fn_with_state(metrics, ingress::track),
        );
        let webhook_limits = webhook_limits(&config, &ingress_settings);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| DaemonError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| DaemonError::Bind {
            addr: config.listen,
            source,
        })?;
        // Requests carry the peer address (`allowed_ips`).
        let server = tokio::spawn(listener::serve(listener, app, webhook_limits, shutdown_rx));
        let ready = Arc::new(AtomicBool::new(false));
        let reloader = path.map(|path| {
            Arc::new(Reloader::new(
                path,
                config.clone(),
                sources,
                capabilities.clone(),
                pipeline.clone(),
                retention,
            ))
        });
        let admin_addr = match &config.admin {
            None => None,
            Some(settings) => {
                let app = crate::admin::router(
                    settings,
                    pipeline.clone(),
                    ready.clone(),
                    reloader.clone(),
                );
                let listener = tokio::net::TcpListener::bind(settings.listen)
                    .await
                    .map_err(|source| DaemonError::Bind {
                        addr: settings.listen,
                        source,
                    })?;
                let admin_addr = listener.local_addr().map_err(|source| DaemonError::Bind {
                    addr: settings.listen,
                    source,
                })?;
                workers.push(tokio::spawn(listener::serve(
                    listener,
                    app,
                    crate::admin::CONNECTION_LIMITS,
                    shutdown.subscribe(),
                )));
                tracing::info!(addr = %admin_addr, "admin API listening");
                Some(admin_addr)
            }
        };
        ready.store(true, Ordering::Relaxed);
        tracing::info!(%addr, plugins = pipeline.plugins.snapshot().len(), config_generation = 1, "fieldhook listening");
        Ok(Self {
            addr,
            load_failures,
            admin_addr,
            reloader,
            ready,
            pipeline,
            _plugins_watch: plugins_watch,
            shutdown,
            server,
            workers,
        })
    }

    /// Stops accepting webhooks, lets workers finish their current task,
    /// and flushes the store.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        // Workers finish the task they hold (bounded by plugin and delivery
        // timeouts); anything unfinished is re-run after restart anyway.
        let workers = futures::future::join_all(self.workers);
        if tokio::time::timeout(std::time::Duration::from_secs(30), workers)
            .await
            .is_err()
        {
            tracing::warn!("workers still busy after 30 s; their tasks will re-run after restart");
        }
        if let Err(e) = self.pipeline.queue.sync().await {
            tracing::error!(error = %e, "final flush failed");
        }
        let flushed = match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.pipeline.store.sync_all(),
        )
        .await
        {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "final store flush failed; the journal replays it at the next start");
                false
            }
            Err(_) => {
                tracing::error!(
                    "final store flush still waiting after 5 s; the journal replays it at the next start"
                );
                false
            }
        };
        if !flushed {
            // sled flushes again when its last handle is dropped, and on a
            // disk that refuses writes it waits there forever: leave the
            // handles to the process's exit. What was acknowledged is in
            // the journal; unfinished work re-runs after restart.
            std::mem::forget(self.pipeline.clone());
        }
    }
}

/// The webhook listener's limits: `[ingress]`, with `max_connections`
/// lowered to what the open-file limit (raised to the hard limit first)
/// holds beside the descriptors the rest of the daemon needs.
fn webhook_limits(config: &Config, settings: &IngressSettings) -> ConnectionLimits {
    let limit = match open_files::raise_limit() {
        Ok(limit) => {
            if limit.now > limit.before {
                tracing::info!(
                    from = limit.before,
                    to = limit.now,
                    "raised the open-file limit to the hard limit"
                );
            }
            limit.now
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            u64::MAX
        }
    };
    let admin = if config.admin.is_some() {
        crate::admin::CONNECTION_LIMITS.max_connections.get()
    } else {
        0
    };
    let reserved = open_files::reserve(config.workers.jobs, config.workers.deliveries, admin);
    let configured = settings.limits.max_connections;
    let max_connections = open_files::webhook_connections(configured, limit, reserved);
    if max_connections < configured {
        tracing::warn!(
            open_file_limit = limit,
            reserved,
            max_connections,
            configured,
            "the open-file limit holds fewer webhook connections than [ingress] max_connections beside the {reserved} descriptors kept for the store, deliveries and the admin API; raise the hard limit (systemd LimitNOFILE=, ulimit -Hn) to serve more"
        );
    }
    ConnectionLimits {
        max_connections,
        header_read_timeout: settings.limits.header_read_timeout(),
    }
}
