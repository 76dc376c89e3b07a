//! `fieldhook:plugin@0.3.x`: 0.2 plus schedules. Its bindings, the
//! `scheduled` export and the `emit` import.
//!
//! The event resource, `log`, `config` and `kv` mean what 0.2's do; their
//! impls here forward to 0.2's (and so to 0.1's).

pub mod bindings;

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{InstancePre, Resource};

use self::bindings::fieldhook::plugin::{config, events, kv, log, types as wit};
use self::bindings::{Plugin, PluginPre};
use super::emit::{EmitError, Emitted, EmittedEvent};
use super::state::PluginState;
use super::v0_2::EventView;
use super::v0_2::bindings::fieldhook::plugin as v0_2;
use super::{CallError, Decision, Outbound, Run};
use fieldhook_core::event::{EntityRecord, EventRecord};

/// A 0.3 plugin, pre-instantiated.
pub(super) struct Pre(PluginPre<PluginState>);

impl Pre {
    /// Checks that the component exports the 0.3 `handler` and `scheduler`.
    pub(super) fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        PluginPre::new(pre).map(Self)
    }

    pub(super) async fn instantiate(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<Instance> {
        Ok(Instance(self.0.instantiate_async(store).await?))
    }
}

/// A live 0.3 instance.
pub(super) struct Instance(Plugin);

impl Instance {
    /// Lends the event to `handle` for one call, as 0.2 does.
    pub(super) async fn run(
        &self,
        store: &mut Store<PluginState>,
        event: &Arc<EventRecord>,
        run: Run,
    ) -> wasmtime::Result<Result<Decision, CallError>> {
        let owned = store
            .data_mut()
            .table
            .push(EventView::new(event.clone(), run))?;
        let lent = Resource::<EventView>::new_borrow(owned.rep());
        let out = self
            .0
            .fieldhook_plugin_handler()
            .call_handle(&mut *store, lent)
            .await;
        store.data_mut().table.delete(owned)?;
        Ok(out?.map(from_wit).map_err(plugin_error))
    }

    /// Runs the schedule `name`.
    pub(super) async fn scheduled(
        &self,
        store: &mut Store<PluginState>,
        name: &str,
    ) -> wasmtime::Result<Result<Decision, CallError>> {
        let out = self
            .0
            .fieldhook_plugin_scheduler()
            .call_scheduled(&mut *store, name)
            .await?;
        Ok(out.map(from_wit).map_err(plugin_error))
    }
}

fn plugin_error(e: wit::PluginError) -> CallError {
    CallError::Plugin {
        message: super::plugin_text(&e.message),
        retryable: e.retryable,
    }
}

fn from_wit(d: wit::Decision) -> Decision {
    match d {
        wit::Decision::Skip => Decision::Filtered,
        wit::Decision::Drop(reason) => Decision::Drop(super::plugin_reason(reason)),
        wit::Decision::Deliver(requests) => Decision::Deliver(
            requests
                .into_iter()
                .map(|r| Outbound {
                    method: r.method,
                    url: r.url,
                    headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                    body: r.body,
                    idempotency_key: r.idempotency_key,
                })
                .collect(),
        ),
    }
}

impl wit::Host for PluginState {}

impl wit::HostEvent for PluginState {
    fn id(&mut self, this: Resource<EventView>) -> wasmtime::Result<String> {
        v0_2::types::HostEvent::id(self, this)
    }

    fn source(&mut self, this: Resource<EventView>) -> wasmtime::Result<String> {
        v0_2::types::HostEvent::source(self, this)
    }

    fn vendor(&mut self, this: Resource<EventView>) -> wasmtime::Result<String> {
        v0_2::types::HostEvent::vendor(self, this)
    }

    fn kind(&mut self, this: Resource<EventView>) -> wasmtime::Result<String> {
        v0_2::types::HostEvent::kind(self, this)
    }

    fn entity(&mut self, this: Resource<EventView>) -> wasmtime::Result<Option<wit::EntityRef>> {
        Ok(
            v0_2::types::HostEvent::entity(self, this)?.map(|x| wit::EntityRef {
                kind: x.kind,
                id: x.id,
                url: x.url,
            }),
        )
    }

    fn received_at_ms(&mut self, this: Resource<EventView>) -> wasmtime::Result<u64> {
        v0_2::types::HostEvent::received_at_ms(self, this)
    }

    fn occurred_at(&mut self, this: Resource<EventView>) -> wasmtime::Result<Option<String>> {
        v0_2::types::HostEvent::occurred_at(self, this)
    }

    fn attempt(&mut self, this: Resource<EventView>) -> wasmtime::Result<u32> {
        v0_2::types::HostEvent::attempt(self, this)
    }

    fn dedupe_key(&mut self, this: Resource<EventView>) -> wasmtime::Result<Option<String>> {
        v0_2::types::HostEvent::dedupe_key(self, this)
    }

    fn parsed(&mut self, this: Resource<EventView>) -> wasmtime::Result<bool> {
        v0_2::types::HostEvent::parsed(self, this)
    }

    fn coalesced(&mut self, this: Resource<EventView>) -> wasmtime::Result<u32> {
        v0_2::types::HostEvent::coalesced(self, this)
    }

    fn header(
        &mut self,
        this: Resource<EventView>,
        name: String,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        v0_2::types::HostEvent::header(self, this, name)
    }

    fn headers(&mut self, this: Resource<EventView>) -> wasmtime::Result<Vec<wit::Header>> {
        Ok(v0_2::types::HostEvent::headers(self, this)?
            .into_iter()
            .map(|h| wit::Header {
                name: h.name,
                value: h.value,
            })
            .collect())
    }

    fn body(&mut self, this: Resource<EventView>) -> wasmtime::Result<Vec<u8>> {
        v0_2::types::HostEvent::body(self, this)
    }

    fn drop(&mut self, this: Resource<EventView>) -> wasmtime::Result<()> {
        v0_2::types::HostEvent::drop(self, this)
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) {
        use v0_2::log::Level;
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        v0_2::log::Host::log(self, level, message)
    }
}

impl config::Host for PluginState {
    fn get(&mut self, key: String) -> Option<String> {
        v0_2::config::Host::get(self, key)
    }

    fn entries(&mut self) -> Vec<(String, String)> {
        v0_2::config::Host::entries(self)
    }
}

impl kv::Host for PluginState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        v0_2::kv::Host::get(self, key).map_err(kv_error)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), kv::KvError> {
        v0_2::kv::Host::set(self, key, value, ttl_ms).map_err(kv_error)
    }

    fn delete(&mut self, key: String) -> Result<bool, kv::KvError> {
        v0_2::kv::Host::delete(self, key).map_err(kv_error)
    }
}

fn kv_error(e: v0_2::kv::KvError) -> kv::KvError {
    use v0_2::kv::KvError as E;
    match e {
        E::TooLarge(m) => kv::KvError::TooLarge(m),
        E::QuotaExceeded(m) => kv::KvError::QuotaExceeded(m),
        E::Unavailable(m) => kv::KvError::Unavailable(m),
    }
}

impl events::Host for PluginState {
    async fn emit(&mut self, event: wit::NewEvent) -> Result<wit::Emitted, wit::PluginError> {
        let fatal = |message: String| wit::PluginError {
            message,
            retryable: false,
        };
        let plugin = self.manifest.name.clone();
        let Some(scope) = self.emit.as_mut() else {
            return Err(fatal(
                "emit is only available in a scheduled run (`scheduled`), not in `handle`".into(),
            ));
        };
        if scope.emitted >= super::emit::MAX_EMITS_PER_RUN {
            // Retryable: the next run picks up where the watermark stopped.
            return Err(wit::PluginError {
                message: format!(
                    "a scheduled run may emit at most {} events; stop here and let the next run \
                     continue from the watermark",
                    super::emit::MAX_EMITS_PER_RUN
                ),
                retryable: true,
            });
        }
        if event.dedupe_key.trim().is_empty() {
            return Err(fatal(
                "an emitted event needs a dedupe key (the one the source's webhooks carry for \
                 the same change)"
                    .into(),
            ));
        }
        scope.emitted += 1;
        let emitter = scope.emitter.clone();
        let schedule = scope.schedule.clone();
        let event = EmittedEvent {
            kind: event.kind,
            entity: event.entity.map(|e| EntityRecord {
                kind: e.kind,
                id: e.id,
                url: e.url,
            }),
            occurred_at: event.occurred_at,
            dedupe_key: event.dedupe_key,
            headers: event
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: event.body,
        };
        match emitter.emit(&plugin, &schedule, event).await {
            Ok(Emitted::Stored) => Ok(wit::Emitted::Stored),
            Ok(Emitted::Duplicate) => Ok(wit::Emitted::Duplicate),
            Err(EmitError { message, retryable }) => Err(wit::PluginError { message, retryable }),
        }
    }
}
