//! Per-call host state: what a plugin instance can reach.
//!
//! Nothing but the imports of the `plugin` world: no environment, no files,
//! no sockets, and outbound HTTP only through [`HttpPolicy`], which sends
//! what the manifest grants ([`fieldhook_capabilities`]). Limits: memory
//! ([`MemoryLimiter`]), guest CPU time ([`CpuMeter`], counted in epoch
//! ticks), wall time (the runtime's timeout around the call), the host
//! memory its `wasi:http` resources and requests hold ([`HostBudget`],
//! [`crate::http_budget`]) and what it may log ([`CallLog`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;

use super::bindings::fieldhook::plugin::{config, kv, log};
use crate::call_log::{CallLog, DroppedLogs, Level, LogLine};
use crate::http_budget::{self, HttpHoldings, HttpView};
use crate::http_policy::HttpPolicy;
use crate::responder::Responder;
use fieldhook_capabilities::Capabilities;
use fieldhook_capabilities::budget::HostBudget;
use fieldhook_capabilities::outbound::CallHttp;
use fieldhook_capabilities::refusals::Refusals;
use fieldhook_credentials::CallScope;
use fieldhook_policy::manifest::{Limits, Manifest};

/// Store data for one plugin call.
pub struct PluginState {
    pub(crate) manifest: Arc<Manifest>,
    wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(super) table: ResourceTable,
    pub(crate) hooks: HttpPolicy,
    pub(crate) held: HttpHoldings,
    caps: Arc<Capabilities>,
    effective: Limits,
    pub(crate) limits: MemoryLimiter,
    pub(crate) cpu: CpuMeter,
    log: CallLog,
    /// Where `emit` stores events: set for scheduled calls only.
    pub(crate) emit: Option<crate::emit::EmitScope>,
}

impl PluginState {
    /// State for one call of the plugin described by `manifest`: no
    /// environment, no files, no sockets, outbound HTTP through the policy
    /// (or answered by `responder`, for tools), limits within the
    /// operator's ceilings.
    pub(crate) fn new(
        manifest: Arc<Manifest>,
        caps: &Arc<Capabilities>,
        responder: Option<Arc<dyn Responder>>,
    ) -> Self {
        // WasiCtx's defaults grant nothing: no env, no args, no preopened
        // dirs, no sockets (every address is refused), stdin closed,
        // stdout/stderr discarded.
        let wasi = WasiCtx::builder().build();
        let effective = caps.sandbox.effective_limits(manifest.limits);
        let budget = HostBudget::new(caps.sandbox.host_budget_bytes(effective));
        let mut table = ResourceTable::new();
        table.set_max_capacity(http_budget::max_handles(budget.limit()));
        let limits = MemoryLimiter {
            inner: wasmtime::StoreLimitsBuilder::new()
                .memory_size(effective.memory_mb as usize * 1024 * 1024)
                .instances(64)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
            peak_bytes: 0,
        };
        Self {
            hooks: HttpPolicy {
                call: CallHttp {
                    plugin: manifest.name.clone(),
                    allowlist: manifest.http.clone(),
                    caps: caps.clone(),
                    scope: Arc::new(CallScope::new(caps.credentials.clone())),
                    refusals: Arc::new(Refusals::default()),
                    budget: budget.clone(),
                },
                responder,
            },
            held: HttpHoldings::new(budget),
            log: CallLog::new(&caps.sandbox),
            manifest,
            wasi,
            http: http_budget::context(),
            table,
            caps: caps.clone(),
            effective,
            limits,
            cpu: CpuMeter::new(Duration::from_millis(effective.cpu_ms)),
            emit: None,
        }
    }

    /// Resets what belongs to one call, for a warm instance's next call: a
    /// fresh CPU budget, an empty log, no refusals, and a new credential
    /// scope (dropping the old one closes the sessions the last job opened).
    /// The host memory budget carries over: what the instance still holds
    /// (resources it kept) counts in its next call too.
    pub(crate) fn begin_call(&mut self) {
        self.cpu = CpuMeter::new(Duration::from_millis(self.effective.cpu_ms));
        self.log = CallLog::new(&self.caps.sandbox);
        self.hooks.call.refusals = Arc::new(Refusals::default());
        self.hooks.call.scope = Arc::new(CallScope::new(self.caps.credentials.clone()));
        self.emit = None;
    }

    /// Ends a call: logs one summary of the log lines and refusals past
    /// their limits, and hands over the lines the call logged.
    pub(crate) fn finish_call(&mut self) -> (Vec<LogLine>, DroppedLogs) {
        self.hooks.call.refusals.finish(&self.manifest.name);
        self.log.finish(&self.manifest.name)
    }

    /// Host memory this instance's calls may hold, bytes.
    pub(crate) fn host_budget_bytes(&self) -> usize {
        self.hooks.call.budget.limit()
    }

    /// Adds what the host refused during the call to a failed call's reason,
    /// so a job dead-lettered after a denied request says which rule to add.
    pub fn explain(
        &self,
        result: Result<super::Decision, super::CallError>,
    ) -> Result<super::Decision, super::CallError> {
        use super::CallError;
        let Some(first) = self.hooks.call.refusals.first() else {
            return result;
        };
        result.map_err(|e| match e {
            CallError::Plugin { message, retryable } => CallError::Plugin {
                message: format!("{message}; the host refused: {first}"),
                retryable,
            },
            CallError::Trap(m) => CallError::Trap(format!("{m}; the host refused: {first}")),
            other => other,
        })
    }
}

/// Installs the memory limiter and the CPU budget on a call's store.
pub(crate) fn enforce_limits(store: &mut wasmtime::Store<PluginState>) {
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| ctx.data_mut().cpu.tick());
}

/// The guest used up its CPU budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("plugin used more than its CPU limit of {0} ms")]
pub struct CpuLimitExceeded(pub u64);

/// Guest execution time, counted at each epoch tick the guest runs into.
///
/// The epoch deadline is one tick ahead, so the callback runs every tick
/// while guest code executes. An interval longer than two ticks means the
/// guest was blocked in a host call (outbound HTTP) or not scheduled: it
/// counts as one tick, so waiting is not CPU. Accurate to about a tick per
/// host call.
pub struct CpuMeter {
    budget: Duration,
    used: Duration,
    last: Instant,
}

impl CpuMeter {
    fn new(budget: Duration) -> Self {
        Self {
            budget,
            used: Duration::ZERO,
            last: Instant::now(),
        }
    }

    /// Guest time counted so far, with the interval since the last tick
    /// counted by the same rule as a tick; for reports.
    pub(crate) fn used(&self) -> Duration {
        let (interval, tick) = (self.last.elapsed(), super::TICK);
        self.used + if interval <= tick * 2 { interval } else { tick }
    }

    fn tick(&mut self) -> wasmtime::Result<UpdateDeadline> {
        let now = Instant::now();
        let tick = super::TICK;
        let interval = now.duration_since(self.last);
        self.used += if interval <= tick * 2 { interval } else { tick };
        self.last = now;
        if self.used > self.budget {
            return Err(CpuLimitExceeded(self.budget.as_millis() as u64).into());
        }
        // Yield so the wall-time limit and other jobs get their turn.
        Ok(UpdateDeadline::Yield(1))
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

impl PluginState {
    /// The view the `wasi:http` imports get ([`http_budget`]).
    pub(crate) fn http_view(&mut self) -> HttpView<'_> {
        HttpView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
            held: &mut self.held,
        }
    }
}

impl kv::Host for PluginState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        self.store()?.get(&self.manifest.name, &key).map_err(to_wit)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), kv::KvError> {
        self.store()?
            .set(&self.manifest.name, &key, &value, ttl_ms)
            .map_err(to_wit)
    }

    fn delete(&mut self, key: String) -> Result<bool, kv::KvError> {
        self.store()?
            .delete(&self.manifest.name, &key)
            .map_err(to_wit)
    }
}

impl PluginState {
    fn store(&self) -> Result<&fieldhook_store::kv::KvStore, kv::KvError> {
        self.caps.kv.as_ref().ok_or_else(|| {
            kv::KvError::Unavailable("this host runs without a key-value store".into())
        })
    }
}

fn to_wit(e: fieldhook_store::kv::KvError) -> kv::KvError {
    use fieldhook_store::kv::KvError as E;
    match e {
        E::TooLarge(m) => kv::KvError::TooLarge(m),
        E::QuotaExceeded(m) => kv::KvError::QuotaExceeded(m),
        E::Unavailable(m) => kv::KvError::Unavailable(m),
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        self.log.write(&self.manifest.name, level, &message);
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
