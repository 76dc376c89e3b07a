//! Delivers, for every event, one `POST {endpoint}` whose body lists the
//! event record's fields as `name=value` lines, written against the raw WIT
//! bindings (no SDK): the end-to-end tests read what a plugin really sees.

wit_bindgen::generate!({
    path: "../../../wit/0.1",
    world: "fieldhook:plugin/plugin",
    generate_all,
});

use exports::fieldhook::plugin::handler::Guest;
use fieldhook::plugin::config;
use fieldhook::plugin::types::{Decision, Event, OutboundRequest, PluginError};

struct Echo;

impl Guest for Echo {
    fn filter(_event: Event) -> bool {
        true
    }

    fn handle(event: Event) -> Result<Decision, PluginError> {
        let Some(endpoint) = config::get("endpoint") else {
            return Err(PluginError {
                message: "echo: set `endpoint` in [config]".into(),
                retryable: false,
            });
        };
        let entity = match &event.entity {
            Some(e) => format!("{} {} {}", e.kind, e.id, e.url.as_deref().unwrap_or("-")),
            None => "-".to_owned(),
        };
        let body = format!(
            "id={}\nsource={}\nvendor={}\nkind={}\nentity={}\noccurred_at={}\nattempt={}\nheaders={}\nbody_bytes={}\n",
            event.id,
            event.source,
            event.vendor,
            event.kind,
            entity,
            event.occurred_at.as_deref().unwrap_or("-"),
            event.attempt,
            event.headers.len(),
            event.body.len(),
        );
        Ok(Decision::Deliver(vec![OutboundRequest {
            method: "POST".into(),
            url: endpoint,
            headers: Vec::new(),
            body: body.into_bytes(),
            idempotency_key: None,
        }]))
    }
}

export!(Echo);
