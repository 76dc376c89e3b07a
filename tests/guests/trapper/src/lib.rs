//! A plugin that misbehaves on purpose, written against the raw WIT
//! bindings (no SDK), so the host's containment is tested on its own.
//!
//! `mode` (manifest `[config]`): `trap` panics, `error` returns a
//! non-retryable error, `retry` a retryable one, `loop` spins forever.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "fieldhook:plugin/plugin",
    generate_all,
});

use exports::fieldhook::plugin::handler::Guest;
use fieldhook::plugin::config;
use fieldhook::plugin::types::{Decision, Event, PluginError};

struct Trapper;

impl Guest for Trapper {
    fn filter(_event: Event) -> bool {
        true
    }

    fn handle(event: Event) -> Result<Decision, PluginError> {
        match config::get("mode").as_deref() {
            Some("trap") => panic!("trapper: panicking on {}", event.id),
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
            _ => Ok(Decision::Drop("trapper: no mode configured".into())),
        }
    }
}

export!(Trapper);
