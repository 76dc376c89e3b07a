//! Per-call host state: what a plugin instance can reach.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::bindings::fieldhook::plugin::{config, log};
use crate::manifest::Manifest;

/// A line a plugin logged during one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Level name (`info`).
    pub level: &'static str,
    /// Message.
    pub message: String,
}

/// Store data for one plugin call.
pub struct PluginState {
    pub(crate) manifest: Arc<Manifest>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: HttpPolicy,
    pub(crate) limits: MemoryLimiter,
    pub(crate) logs: Vec<LogLine>,
}

impl PluginState {
    /// State for one call of the plugin described by `manifest`: no
    /// environment, no files, no sockets, and outbound HTTP through the policy.
    pub fn new(manifest: Arc<Manifest>) -> Self {
        // WasiCtx's defaults grant nothing: no env, no preopened dirs, no
        // sockets, stdin closed, stdout/stderr discarded.
        let wasi = WasiCtx::builder().build();
        let limits = MemoryLimiter {
            inner: wasmtime::StoreLimitsBuilder::new()
                .memory_size(manifest.limits.memory_mb as usize * 1024 * 1024)
                .instances(64)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
            peak_bytes: 0,
        };
        Self {
            hooks: HttpPolicy {
                plugin: manifest.name.clone(),
            },
            manifest,
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits,
            logs: Vec::new(),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Memory limit that also records the peak, for reports.
pub struct MemoryLimiter {
    inner: StoreLimits,
    pub(crate) peak_bytes: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        if ok {
            self.peak_bytes = self.peak_bytes.max(desired);
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The embedder's policy on a plugin's outbound HTTP.
///
/// No plugin has outbound grants yet, so every request is denied before
/// any connection is made; the manifest allowlist lands here.
pub struct HttpPolicy {
    plugin: String,
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        tracing::warn!(
            plugin = %self.plugin,
            method = %request.method(),
            uri = %request.uri(),
            "outbound HTTP denied: this plugin has no outbound grants"
        );
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) {
        let plugin = self.manifest.name.as_str();
        let name = match level {
            log::Level::Trace => {
                tracing::trace!(plugin, "{message}");
                "trace"
            }
            log::Level::Debug => {
                tracing::debug!(plugin, "{message}");
                "debug"
            }
            log::Level::Info => {
                tracing::info!(plugin, "{message}");
                "info"
            }
            log::Level::Warn => {
                tracing::warn!(plugin, "{message}");
                "warn"
            }
            log::Level::Error => {
                tracing::error!(plugin, "{message}");
                "error"
            }
        };
        // Bounded, so a chatty plugin cannot grow host memory without limit.
        if self.logs.len() < 1000 {
            self.logs.push(LogLine {
                level: name,
                message: message.chars().take(4096).collect(),
            });
        }
    }
}

impl config::Host for PluginState {
    fn get(&mut self, key: String) -> Option<String> {
        self.manifest.config.get(&key).cloned()
    }

    fn entries(&mut self) -> Vec<(String, String)> {
        self.manifest
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
