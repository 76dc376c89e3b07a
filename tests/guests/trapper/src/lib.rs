//! A plugin that misbehaves on purpose, written against the raw WIT
//! bindings of `fieldhook:plugin@0.2.0` (no SDK), so the host's containment
//! is tested on its own.
//!
//! `mode` (manifest `[config]`): `trap` panics, `error` returns a
//! non-retryable error, `retry` a retryable one, `loop` spins forever.
//! Two modes show what a 0.2 plugin sees: `skip` skips every event, and
//! `fields` drops it with every field of the event resource as the reason.

wit_bindgen::generate!({
    path: "../../../wit/0.2",
    world: "fieldhook:plugin/plugin",
    generate_all,
});

use exports::fieldhook::plugin::handler::Guest;
use fieldhook::plugin::config;
use fieldhook::plugin::types::{Decision, Event, PluginError};

struct Trapper;

impl Guest for Trapper {
    fn handle(event: &Event) -> Result<Decision, PluginError> {
        match config::get("mode").as_deref() {
            Some("trap") => panic!("trapper: panicking on {}", event.id()),
            Some("error") => Err(PluginError {
                message: "trapper: this event can never be handled".into(),
                retryable: false,
            }),
            Some("retry") => Err(PluginError {
                message: "trapper: try again later".into(),
                retryable: true,
            }),
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = n.wrapping_add(1);
                    std::hint::black_box(n);
                }
            }
            Some("skip") => Ok(Decision::Skip),
            Some("fields") => Ok(Decision::Drop(fields(event))),
            _ => Ok(Decision::Drop("trapper: no mode configured".into())),
        }
    }
}

/// Every field of the event, one `name=value` per line.
fn fields(event: &Event) -> String {
    let entity = match event.entity() {
        Some(e) => format!("{} {} {}", e.kind, e.id, e.url.as_deref().unwrap_or("-")),
        None => "-".into(),
    };
    let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8_lossy(&v).into_owned());
    format!(
        "id={}\nsource={}\nvendor={}\nkind={}\nentity={}\nreceived_at_ms={}\noccurred_at={}\n\
         attempt={}\ndedupe_key={}\nparsed={}\ncoalesced={}\nheader(X-Test)={}\nheaders={}\n\
         body_bytes={}\n",
        event.id(),
        event.source(),
        event.vendor(),
        event.kind(),
        entity,
        event.received_at_ms(),
        event.occurred_at().as_deref().unwrap_or("-"),
        event.attempt(),
        event.dedupe_key().as_deref().unwrap_or("-"),
        event.parsed(),
        event.coalesced(),
        text(event.header("X-Test")).as_deref().unwrap_or("-"),
        event.headers().len(),
        event.body().len(),
    )
}

export!(Trapper);
