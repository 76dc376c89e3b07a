//! `fieldhook:plugin@0.1.x`: its bindings and the conversions between its
//! types and the host's.

pub mod bindings;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use self::bindings::fieldhook::plugin::types as wit;
use self::bindings::{Plugin, PluginPre};
use super::state::PluginState;
use super::{CallError, Decision, Outbound, Run};
use fieldhook_core::event::EventRecord;

/// The header a 0.1 plugin finds on the latest event of a coalesced burst:
/// how many events the run stands for (0.2 has `event.coalesced()`).
pub const COALESCED_HEADER: &str = "fieldhook-coalesced";

/// A 0.1 plugin, pre-instantiated.
pub(super) struct Pre(PluginPre<PluginState>);

impl Pre {
    /// Checks that the component exports the 0.1 `handler`.
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

/// A live 0.1 instance.
pub(super) struct Instance(Plugin);

impl Instance {
    /// Runs `filter`, then `handle` when the plugin wants the event.
    pub(super) async fn run(
        &self,
        store: &mut Store<PluginState>,
        event: &EventRecord,
        run: Run,
    ) -> wasmtime::Result<Result<Decision, CallError>> {
        let event = to_wit(event, run);
        let handler = self.0.fieldhook_plugin_handler();
        if !handler.call_filter(&mut *store, &event).await? {
            return Ok(Ok(Decision::Filtered));
        }
        let out = handler.call_handle(&mut *store, &event).await?;
        Ok(out.map(from_wit).map_err(|e| CallError::Plugin {
            message: super::plugin_text(&e.message),
            retryable: e.retryable,
        }))
    }
}

fn to_wit(e: &EventRecord, run: Run) -> wit::Event {
    let mut headers: Vec<wit::Header> = e
        .headers
        .iter()
        .map(|(name, value)| wit::Header {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    if run.coalesced > 1 {
        headers.push(wit::Header {
            name: COALESCED_HEADER.into(),
            value: run.coalesced.to_string().into_bytes(),
        });
    }
    wit::Event {
        id: e.id.clone(),
        source: e.source.clone(),
        vendor: e.vendor.clone(),
        kind: e.kind.clone(),
        entity: e.entity.as_ref().map(|x| wit::EntityRef {
            kind: x.kind.clone(),
            id: x.id.clone(),
            url: x.url.clone(),
        }),
        received_at_ms: e.received_at_ms,
        occurred_at: e.occurred_at.clone(),
        attempt: run.attempt,
        headers,
        body: e.body.clone(),
    }
}

fn from_wit(d: wit::Decision) -> Decision {
    match d {
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
