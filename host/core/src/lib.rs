//! fieldhook's shared vocabulary, free of I/O and of any runtime: the layers
//! above (vendors, policy, store, runtime, pipeline, daemon) speak in these
//! types.
//!
//! - [`event`]: a verified webhook, before and after the store numbers it,
//!   and its time-sortable id.
//! - [`decision`]: what a plugin decides, and the requests it returns.
//! - [`task`]: what jobs and deliveries carry through the queue.
//! - [`secret`]: secret values and where the configuration reads them from.
//! - [`time`]: the wall clock in Unix milliseconds.
//! - [`text`]: text from plugins made safe for the daemon's log.
//!
//! ```
//! use fieldhook_core::event::{event_id_at, event_time_ms};
//!
//! let id = event_id_at(1_700_000_000_000);
//! assert!(id.starts_with("evt_"));
//! assert_eq!(event_time_ms(&id), Some(1_700_000_000_000));
//! ```
#![deny(missing_docs)]

pub mod bytes;
pub mod decision;
pub mod event;
pub mod secret;
pub mod task;
pub mod text;
pub mod time;
