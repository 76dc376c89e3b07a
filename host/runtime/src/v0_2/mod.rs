//! `fieldhook:plugin@0.2.x`: its bindings, the event resource, and the
//! conversions between its types and the host's.
//!
//! 0.2 makes one export call per event and lends the event as a resource:
//! the guest copies in only the fields it reads. Its `log`, `config` and
//! `kv` imports mean what 0.1's do; their impls here forward to 0.1's.

pub mod bindings;

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{InstancePre, Resource};

use self::bindings::fieldhook::plugin::{config, kv, log, types as wit};
use self::bindings::{Plugin, PluginPre};
use super::state::PluginState;
use super::v0_1::bindings::fieldhook::plugin as v0_1;
use super::{CallError, Decision, Outbound, Run};
use fieldhook_core::event::EventRecord;

/// The host side of the `event` resource: the stored event, shared, and
/// which run this call is.
pub struct EventView {
    record: Arc<EventRecord>,
    run: Run,
}

impl EventView {
    /// The view lent for one call.
    pub(crate) fn new(record: Arc<EventRecord>, run: Run) -> Self {
        Self { record, run }
    }
}

/// A 0.2 plugin, pre-instantiated.
pub(super) struct Pre(PluginPre<PluginState>);

impl Pre {
    /// Checks that the component exports the 0.2 `handler`.
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

/// A live 0.2 instance.
pub(super) struct Instance(Plugin);

impl Instance {
    /// Lends the event to `handle` for one call.
    pub(super) async fn run(
        &self,
        store: &mut Store<PluginState>,
        event: &Arc<EventRecord>,
        run: Run,
    ) -> wasmtime::Result<Result<Decision, CallError>> {
        let view = EventView::new(event.clone(), run);
        let owned = store.data_mut().table.push(view)?;
        let lent = Resource::<EventView>::new_borrow(owned.rep());
        let out = self
            .0
            .fieldhook_plugin_handler()
            .call_handle(&mut *store, lent)
            .await;
        // Gone after the call, also when it trapped: a warm instance's next
        // call must not find this event in the table.
        store.data_mut().table.delete(owned)?;
        Ok(out?.map(from_wit).map_err(|e| CallError::Plugin {
            message: super::plugin_text(&e.message),
            retryable: e.retryable,
        }))
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

impl PluginState {
    fn event(&self, this: &Resource<EventView>) -> wasmtime::Result<&EventRecord> {
        Ok(&self.table.get(this)?.record)
    }
}

impl wit::Host for PluginState {}

impl wit::HostEvent for PluginState {
    fn id(&mut self, this: Resource<EventView>) -> wasmtime::Result<String> {
        Ok(self.event(&this)?.id.clone())
    }

    fn source(&mut self, this: Resource<EventView>) -> wasmtime::Result<String> {
        Ok(self.event(&this)?.source.clone())
    }

    fn vendor(&mut self, this: Resource<EventView>) -> wasmtime::Result<String> {
        Ok(self.event(&this)?.vendor.clone())
    }

    fn kind(&mut self, this: Resource<EventView>) -> wasmtime::Result<String> {
        Ok(self.event(&this)?.kind.clone())
    }

    fn entity(&mut self, this: Resource<EventView>) -> wasmtime::Result<Option<wit::EntityRef>> {
        Ok(self.event(&this)?.entity.as_ref().map(|x| wit::EntityRef {
            kind: x.kind.clone(),
            id: x.id.clone(),
            url: x.url.clone(),
        }))
    }

    fn received_at_ms(&mut self, this: Resource<EventView>) -> wasmtime::Result<u64> {
        Ok(self.event(&this)?.received_at_ms)
    }

    fn occurred_at(&mut self, this: Resource<EventView>) -> wasmtime::Result<Option<String>> {
        Ok(self.event(&this)?.occurred_at.clone())
    }

    fn attempt(&mut self, this: Resource<EventView>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&this)?.run.attempt)
    }

    fn dedupe_key(&mut self, this: Resource<EventView>) -> wasmtime::Result<Option<String>> {
        Ok(self.event(&this)?.dedupe_key.clone())
    }

    fn parsed(&mut self, this: Resource<EventView>) -> wasmtime::Result<bool> {
        Ok(self.event(&this)?.parsed)
    }

    fn coalesced(&mut self, this: Resource<EventView>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&this)?.run.coalesced)
    }

    fn header(
        &mut self,
        this: Resource<EventView>,
        name: String,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self
            .event(&this)?
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.clone()))
    }

    fn headers(&mut self, this: Resource<EventView>) -> wasmtime::Result<Vec<wit::Header>> {
        Ok(self
            .event(&this)?
            .headers
            .iter()
            .map(|(name, value)| wit::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect())
    }

    fn body(&mut self, this: Resource<EventView>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.event(&this)?.body.clone())
    }

    fn drop(&mut self, this: Resource<EventView>) -> wasmtime::Result<()> {
        // Guests only ever borrow events; the host deletes its own handle
        // after the call. An owned handle reaching here is still removed.
        self.table.delete(this)?;
        Ok(())
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) {
        use v0_1::log::{Host, Level};
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        Host::log(self, level, message)
    }
}

impl config::Host for PluginState {
    fn get(&mut self, key: String) -> Option<String> {
        v0_1::config::Host::get(self, key)
    }

    fn entries(&mut self) -> Vec<(String, String)> {
        v0_1::config::Host::entries(self)
    }
}

impl kv::Host for PluginState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        v0_1::kv::Host::get(self, key).map_err(kv_error)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), kv::KvError> {
        v0_1::kv::Host::set(self, key, value, ttl_ms).map_err(kv_error)
    }

    fn delete(&mut self, key: String) -> Result<bool, kv::KvError> {
        v0_1::kv::Host::delete(self, key).map_err(kv_error)
    }
}

fn kv_error(e: v0_1::kv::KvError) -> kv::KvError {
    use v0_1::kv::KvError as E;
    match e {
        E::TooLarge(m) => kv::KvError::TooLarge(m),
        E::QuotaExceeded(m) => kv::KvError::QuotaExceeded(m),
        E::Unavailable(m) => kv::KvError::Unavailable(m),
    }
}
