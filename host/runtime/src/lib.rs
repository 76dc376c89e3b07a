//! The plugin runtime: wasmtime components, limits, and calls.
//!
//! One [`Runtime`] holds the engine (pooling allocator, epoch interruption)
//! and the linker with every import a plugin may use. [`Runtime::load`]
//! compiles a component (or takes it from the [`cache`]), checks which WIT
//! version it targets ([`version`]) and pre-instantiates it with that
//! version's bindings; [`Runtime::call`] runs the plugin on one event on a
//! fresh or warm instance ([`instances`]) with the plugin's memory and time
//! limits.
#![deny(missing_docs)]

mod bindings;
pub mod cache;
pub mod call_log;
pub mod directory;
pub mod emit;
mod http_budget;
mod http_policy;
pub mod instances;
pub mod responder;
mod state;
mod v0_1;
mod v0_2;
mod v0_3;
pub mod version;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use bindings::fieldhook::plugin::{
    config as wit_config, kv as wit_kv, log as wit_log, types as wit,
};
pub use cache::{CacheOutcome, CodeCache};
pub use call_log::{DroppedLogs, LogLine};
pub use emit::{EmitError, Emitted, EmittedEvent, Emitter};
pub use instances::InstancePolicy;
use instances::{Warm, WarmPool};
use state::PluginState;
pub use version::{VersionError, WitVersion};

use fieldhook_capabilities::{Capabilities, InForce};
pub use fieldhook_core::decision::{Decision, Outbound};
use fieldhook_core::event::EventRecord;
use fieldhook_policy::manifest::Manifest;

/// Bytes of a pooled memory or table slot kept mapped between instances.
const FRESH_KEEP_RESIDENT: usize = 1 << 20;

/// Epoch tick: the granularity of time limits.
const TICK: Duration = Duration::from_millis(5);

/// Failures to set up the runtime or load a plugin.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be created.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    /// The component file could not be read.
    #[error("cannot read component {path}: {source}")]
    Read {
        /// Component path.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Not a valid component, or it does not fit the `fieldhook:plugin` world.
    #[error("plugin `{plugin}`: {message}")]
    Invalid {
        /// Plugin name.
        plugin: String,
        /// What wasmtime said, and what to do.
        message: String,
    },
}

/// Why a call did not produce a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin returned an error.
    #[error("plugin error{}: {message}", if *retryable { " (retryable)" } else { "" })]
    Plugin {
        /// The plugin's message.
        message: String,
        /// Whether the plugin says a retry may succeed.
        retryable: bool,
    },
    /// The plugin trapped (panic, out of memory, out of bounds...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin ran past its time limit.
    #[error("plugin exceeded its time limit of {0} ms")]
    Timeout(u64),
    /// The plugin's code ran longer than its CPU limit.
    #[error("plugin exceeded its CPU limit of {0} ms")]
    CpuLimit(u64),
    /// The plugin made the host hold more than its budget (header maps,
    /// resource handles); the message names the budget and how to raise it.
    #[error("plugin stopped: {0}")]
    HostMemory(String),
}

impl CallError {
    /// Whether running the job again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Plugin { retryable, .. } => *retryable,
            // A trap may come from a transient state (a fetch that returned
            // garbage); retries are bounded, then the job is dead-lettered.
            CallError::Trap(_)
            | CallError::Timeout(_)
            | CallError::CpuLimit(_)
            | CallError::HostMemory(_) => true,
        }
    }
}

/// Which run of a job a call is, as the plugin sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// 1 on the first run of this plugin on this event, then 2, 3, ...
    pub attempt: u32,
    /// How many events the run stands for: more than 1 when a debounced
    /// burst was coalesced into this event.
    pub coalesced: u32,
}

impl Run {
    /// The first attempt at one event.
    pub const FIRST: Run = Run {
        attempt: 1,
        coalesced: 1,
    };
}

/// The outcome of one call, with what it cost.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// Decision or error.
    pub result: Result<Decision, CallError>,
    /// Lines the plugin logged, within the call's limits.
    pub logs: Vec<LogLine>,
    /// What the plugin logged past the call's limits.
    pub logs_dropped: DroppedLogs,
    /// Wall time of the call, including instantiation.
    pub elapsed: Duration,
    /// Largest linear memory the plugin grew to, bytes.
    pub peak_memory_bytes: usize,
    /// Time spent executing the plugin's code, as its CPU limit counts it
    /// (epoch ticks; accurate to about a tick per host call).
    pub cpu_time: Duration,
}

/// A plugin ready to run.
pub struct LoadedPlugin {
    /// Its manifest.
    pub manifest: Arc<Manifest>,
    /// Whether the compiled code came from the cache.
    pub cache: CacheOutcome,
    /// The contract version it targets.
    pub wit_version: WitVersion,
    /// Fresh instance per call, or warm ones reused.
    pub instances: InstancePolicy,
    /// Size of the component file, bytes.
    pub component_bytes: usize,
    component: wasmtime::component::Component,
    pre: VersionedPre,
    warm: WarmPool<Live>,
}

impl LoadedPlugin {
    /// Names the component imports and exports, as its WIT world states them.
    pub fn interfaces(&self, runtime: &Runtime) -> (Vec<String>, Vec<String>) {
        let ty = self.component.component_type();
        let imports = ty
            .imports(&runtime.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exports = ty
            .exports(&runtime.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        (imports, exports)
    }

    /// Warm instances idle now (always 0 for fresh-per-call plugins).
    pub fn warm_instances(&self) -> usize {
        self.warm.idle()
    }
}

/// A pre-instantiated component, with the bindings of the version it targets.
enum VersionedPre {
    V0_1(v0_1::Pre),
    V0_2(v0_2::Pre),
    V0_3(v0_3::Pre),
}

/// A live instance, with the bindings of the version it targets.
enum VersionedInstance {
    V0_1(v0_1::Instance),
    V0_2(v0_2::Instance),
    V0_3(v0_3::Instance),
}

/// What a call runs.
enum Entry<'a> {
    /// `handle` (and 0.1's `filter`) on one event.
    Handle(&'a Arc<EventRecord>, Run),
    /// `scheduled` for one of the manifest's schedules (0.3 on).
    Scheduled {
        name: &'a str,
        emitter: Arc<dyn Emitter>,
    },
}

/// An instance and the store that owns it.
struct Live {
    store: Store<PluginState>,
    instance: VersionedInstance,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .finish_non_exhaustive()
    }
}

/// The engine, linker and code cache shared by every plugin.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: CodeCache,
    ticking: Arc<AtomicBool>,
    capabilities: InForce,
    /// Answers plugins' outbound HTTP instead of the network (tools only).
    responder: Option<Arc<dyn responder::Responder>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Creates the engine, with compiled code cached in `cache`; plugins
    /// reach what `capabilities` hold (credentials, key-value store,
    /// operator limits) and nothing else.
    pub fn new(cache: CodeCache, capabilities: impl Into<InForce>) -> Result<Self, RuntimeError> {
        let capabilities = capabilities.into();
        let mut config = Config::new();
        config.epoch_interruption(true);
        if std::env::var_os("TMP_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        config.wasm_component_model(true);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(256);
        pool.total_core_instances(1024);
        pool.total_memories(512);
        pool.total_tables(512);
        pool.max_memory_size(fieldhook_policy::manifest::MAX_MEMORY_MB as usize * 1024 * 1024);
        // A fresh instance per event reuses a slot: resetting the pages it
        // dirtied in place is cheaper than unmapping them and faulting them
        // back. PAGEMAP_SCAN (Linux 6.7+) finds exactly those pages; without
        // it wasmtime memsets the whole kept-resident prefix.
        pool.linear_memory_keep_resident(FRESH_KEEP_RESIDENT);
        pool.table_keep_resident(FRESH_KEEP_RESIDENT);
        pool.pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;

        let mut linker: Linker<PluginState> = Linker::new(&engine);
        let add = |r: wasmtime::Result<()>| r.map_err(|e| RuntimeError::Engine(e.to_string()));
        add(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
        add(http_budget::add_to_linker(
            &mut linker,
            PluginState::http_view,
        ))?;
        add(wit::add_to_linker::<_, HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        ))?;
        add(wit_log::add_to_linker::<_, HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        ))?;
        add(wit_config::add_to_linker::<_, HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        ))?;
        add(wit_kv::add_to_linker::<_, HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        ))?;
        {
            use v0_2::bindings::fieldhook::plugin::{config, kv, log, types};
            add(types::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
            add(log::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
            add(config::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
            add(kv::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
        }
        {
            use v0_3::bindings::fieldhook::plugin::{config, events, kv, log, types};
            add(types::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
            add(log::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
            add(config::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
            add(kv::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
            add(events::add_to_linker::<_, HasSelf<PluginState>>(
                &mut linker,
                |s| s,
            ))?;
        }

        // Epoch ticker: time limits are counted in ticks.
        let ticking = Arc::new(AtomicBool::new(true));
        let (e, t) = (engine.clone(), ticking.clone());
        std::thread::Builder::new()
            .name("fieldhook-epoch".into())
            .spawn(move || {
                while t.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    e.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;

        Ok(Self {
            engine,
            linker,
            cache,
            ticking,
            capabilities,
            responder: None,
        })
    }

    /// A runtime whose plugins' outbound HTTP is answered by `responder`
    /// (canned answers, recording) instead of the network; for tools such
    /// as `plugin run`. Every instance of this runtime, and only those, use
    /// it.
    pub fn with_responder(
        cache: CodeCache,
        capabilities: impl Into<InForce>,
        responder: Arc<dyn responder::Responder>,
    ) -> Result<Self, RuntimeError> {
        let mut runtime = Self::new(cache, capabilities)?;
        runtime.responder = Some(responder);
        Ok(runtime)
    }

    /// Reads, compiles (or takes from the cache) and pre-instantiates a
    /// plugin. Checks that it implements the `fieldhook:plugin` world.
    pub fn load(&self, manifest: Manifest) -> Result<LoadedPlugin, RuntimeError> {
        let bytes = std::fs::read(&manifest.component).map_err(|source| RuntimeError::Read {
            path: manifest.component.clone(),
            source,
        })?;
        self.load_bytes(manifest, &bytes)
    }

    /// Like [`Runtime::load`], with the component's bytes already in hand.
    pub fn load_bytes(
        &self,
        manifest: Manifest,
        bytes: &[u8],
    ) -> Result<LoadedPlugin, RuntimeError> {
        let invalid = |message: String| RuntimeError::Invalid {
            plugin: manifest.name.clone(),
            message,
        };
        if bytes.starts_with(b"\0asm\x01\0\0\0") {
            return Err(invalid(
                "this is a core WebAssembly module, not a component; build it for \
                 wasm32-wasip2 (or run `wasm-tools component new`)"
                    .into(),
            ));
        }
        let (component, cache) = self
            .cache
            .load(&self.engine, bytes)
            .map_err(|e| invalid(format!("not a valid component: {e:#}")))?;
        let wit_version =
            version::detect(&self.engine, &component).map_err(|e| invalid(e.to_string()))?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "imports something fieldhook does not provide (it targets {wit_version}): {e:#}"
            ))
        })?;
        let pre = match wit_version {
            WitVersion::V0_1 => v0_1::Pre::new(instance_pre).map(VersionedPre::V0_1),
            WitVersion::V0_2 => v0_2::Pre::new(instance_pre).map(VersionedPre::V0_2),
            WitVersion::V0_3 => v0_3::Pre::new(instance_pre).map(VersionedPre::V0_3),
        }
        .map_err(|e| {
            invalid(format!(
                "does not export the `fieldhook:plugin/handler` interface of {wit_version}: {e:#}"
            ))
        })?;
        if let Some(s) = manifest.schedules.first()
            && wit_version < WitVersion::V0_3
        {
            return Err(invalid(format!(
                "declares schedule `{}`, but schedules need fieldhook:plugin@0.3.0 and it                  targets {wit_version}; rebuild it with the current SDK or remove [[schedules]]",
                s.name
            )));
        }
        let instances = InstancePolicy::for_plugin(&manifest, bytes.len());
        Ok(LoadedPlugin {
            manifest: Arc::new(manifest),
            cache,
            wit_version,
            instances,
            component_bytes: bytes.len(),
            component,
            pre,
            warm: WarmPool::default(),
        })
    }

    /// Runs the plugin on one event (0.1: `filter`, then `handle`; 0.2:
    /// `handle`), on a fresh instance or a warm one as the plugin's
    /// [`InstancePolicy`] says.
    pub async fn call(
        &self,
        plugin: &LoadedPlugin,
        event: &Arc<EventRecord>,
        run: Run,
    ) -> CallReport {
        self.enter(plugin, Entry::Handle(event, run)).await
    }

    /// Runs the plugin's schedule `name` (`scheduled`, contract 0.3 on);
    /// the events it emits go to `emitter`. Same instances and limits as
    /// [`Runtime::call`].
    pub async fn call_scheduled(
        &self,
        plugin: &LoadedPlugin,
        name: &str,
        emitter: Arc<dyn Emitter>,
    ) -> CallReport {
        self.enter(plugin, Entry::Scheduled { name, emitter }).await
    }

    async fn enter(&self, plugin: &LoadedPlugin, entry: Entry<'_>) -> CallReport {
        let started = Instant::now();
        let limits = self
            .capabilities
            .get()
            .sandbox
            .effective_limits(plugin.manifest.limits);
        let warm = match plugin.instances {
            InstancePolicy::Reuse(_) => plugin.warm.take(),
            InstancePolicy::Fresh => None,
        };
        let (mut live, calls): (Option<Live>, u32) = match warm {
            Some(w) => (Some(w.instance), w.calls),
            None => (None, 0),
        };
        let mut store_slot: Option<Live> = None;
        // Per call: a fresh time budget (instantiation included) and an
        // empty log, also on a warm instance.
        let run = async {
            let live = match live.take() {
                Some(mut l) => {
                    // A fresh CPU budget, log, refusals and credential
                    // scope, as for a fresh instance.
                    l.store.data_mut().begin_call();
                    l.store.set_epoch_deadline(1);
                    store_slot.insert(l)
                }
                None => {
                    let mut store = self.new_store(plugin);
                    let instance = match &plugin.pre {
                        VersionedPre::V0_1(pre) => {
                            VersionedInstance::V0_1(pre.instantiate(&mut store).await?)
                        }
                        VersionedPre::V0_2(pre) => {
                            VersionedInstance::V0_2(pre.instantiate(&mut store).await?)
                        }
                        VersionedPre::V0_3(pre) => {
                            VersionedInstance::V0_3(pre.instantiate(&mut store).await?)
                        }
                    };
                    store_slot.insert(Live { store, instance })
                }
            };
            match (&live.instance, entry) {
                (VersionedInstance::V0_1(i), Entry::Handle(event, run)) => {
                    i.run(&mut live.store, event, run).await
                }
                (VersionedInstance::V0_2(i), Entry::Handle(event, run)) => {
                    i.run(&mut live.store, event, run).await
                }
                (VersionedInstance::V0_3(i), Entry::Handle(event, run)) => {
                    i.run(&mut live.store, event, run).await
                }
                (VersionedInstance::V0_3(i), Entry::Scheduled { name, emitter }) => {
                    live.store.data_mut().emit = Some(emit::EmitScope {
                        emitter,
                        schedule: name.to_owned(),
                        emitted: 0,
                    });
                    let out = i.scheduled(&mut live.store, name).await;
                    // A warm instance's next `handle` must not emit.
                    live.store.data_mut().emit = None;
                    out
                }
                (
                    VersionedInstance::V0_1(_) | VersionedInstance::V0_2(_),
                    Entry::Scheduled { .. },
                ) => Ok(Err(CallError::Plugin {
                    message: format!(
                        "schedules need fieldhook:plugin@0.3.0; this plugin targets {}",
                        plugin.wit_version
                    ),
                    retryable: false,
                })),
            }
        };
        // The epoch deadline stops a busy guest; the timeout also covers a
        // guest blocked in a host call.
        let wall = Duration::from_millis(limits.timeout_ms) + TICK * 4;
        let (result, healthy) = match tokio::time::timeout(wall, run).await {
            Err(_) => (Err(CallError::Timeout(limits.timeout_ms)), false),
            Ok(Ok(r)) => (r, true),
            Ok(Err(e)) => (
                Err(classify_trap(e, &limits, &self.capabilities.get())),
                false,
            ),
        };
        let Some(mut live) = store_slot else {
            return CallReport {
                result,
                logs: Vec::new(),
                logs_dropped: DroppedLogs::default(),
                elapsed: started.elapsed(),
                peak_memory_bytes: 0,
                cpu_time: Duration::ZERO,
            };
        };
        let result = live.store.data().explain(result);
        let (logs, logs_dropped) = live.store.data_mut().finish_call();
        // Memory never shrinks: for a warm instance the peak is its size now.
        let peak_memory_bytes = live.store.data().limits.peak_bytes;
        let cpu_time = live.store.data().cpu.used();
        if let (InstancePolicy::Reuse(recycle), true) = (plugin.instances, healthy) {
            // A trapped or interrupted instance is never reused.
            let warm = Warm {
                instance: live,
                calls: calls + 1,
            };
            if !plugin.warm.give_back(warm, recycle, peak_memory_bytes) {
                tracing::debug!(plugin = %plugin.manifest.name, calls = calls + 1, peak_memory_bytes, "warm instance recycled");
            }
        }
        CallReport {
            result,
            logs,
            logs_dropped,
            elapsed: started.elapsed(),
            peak_memory_bytes,
            cpu_time,
        }
    }

    fn new_store(&self, plugin: &LoadedPlugin) -> Store<PluginState> {
        let mut store = Store::new(
            &self.engine,
            PluginState::new(
                plugin.manifest.clone(),
                &self.capabilities.get(),
                self.responder.clone(),
            ),
        );
        state::enforce_limits(&mut store);
        // What one host call may copy out of the guest (a list of strings
        // all pointing at the same bytes costs each copy): within the
        // budget, and never more than wasmtime's own default.
        let budget = store.data().host_budget_bytes();
        store.set_hostcall_fuel(budget.min(MAX_HOSTCALL_BYTES));
        store
    }

    /// The engine, for tools that inspect components.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Most one host call may copy out of a guest, bytes: wasmtime's default.
const MAX_HOSTCALL_BYTES: usize = 128 << 20;

/// Longest trap message or plugin-supplied reason kept, bytes.
pub(crate) const MAX_REASON_BYTES: usize = 8192;

/// A plugin's error message, as the job's outcome keeps it and the
/// daemon's log shows it: one line, bounded.
pub(crate) fn plugin_text(text: &str) -> String {
    fieldhook_core::text::one_line(text, MAX_REASON_BYTES)
}

/// Why a plugin dropped an event, bounded; kept as the plugin wrote it
/// (it may be several lines), and escaped where it is logged.
pub(crate) fn plugin_reason(reason: String) -> String {
    match fieldhook_core::text::cut(&reason, MAX_REASON_BYTES) {
        std::borrow::Cow::Borrowed(_) => reason,
        std::borrow::Cow::Owned(cut) => cut,
    }
}

fn classify_trap(
    e: wasmtime::Error,
    limits: &fieldhook_policy::manifest::Limits,
    caps: &Capabilities,
) -> CallError {
    if let Some(state::CpuLimitExceeded(ms)) = e.downcast_ref::<state::CpuLimitExceeded>() {
        return CallError::CpuLimit(*ms);
    }
    if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
        return CallError::Timeout(limits.timeout_ms);
    }
    if let Some(over) = e.downcast_ref::<fieldhook_capabilities::budget::OverBudget>() {
        return CallError::HostMemory(over.to_string());
    }
    if let Some(wasmtime::component::ResourceTableError::Full) =
        e.downcast_ref::<wasmtime::component::ResourceTableError>()
    {
        let handles = http_budget::max_handles(caps.sandbox.host_budget_bytes(*limits));
        return CallError::HostMemory(format!(
            "the plugin held more than {handles} handles at once (header maps, requests, \
             responses, streams, pollables); the number grows with [limits] memory_mb in \
             plugin.toml (the operator's ceiling is [sandbox] max_memory_mb): raise it, or drop \
             handles when done"
        ));
    }
    // Function names in a backtrace come from the component: one line.
    CallError::Trap(fieldhook_core::text::one_line(
        &format!("{e:#}"),
        MAX_REASON_BYTES,
    ))
}
