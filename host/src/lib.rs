//! fieldhook: a self-hosted webhook daemon for field-service platforms.
//!
//! The path of one event, and the module that owns each step:
//! 1. [`ingress`] takes `POST /hooks/{source}`, and the source's vendor
//!    verifier ([`ingress::vendors`]) checks the raw bytes and normalizes them.
//! 2. [`store`] makes the event durable before the 2xx, sharing one flush
//!    between concurrent requests (group commit).
//! 3. [`pipeline`] fans each event out to the subscribed plugins as jobs in
//!    the [`queue`], runs them in the [`runtime`], and delivers the requests
//!    they return ([`pipeline::delivery`]).
//!
//! What a plugin may reach (outbound HTTP by manifest grant, its key-value
//! store, limits) is [`capabilities`]; [`credentials`] are added by the host
//! to the requests a grant names, never shown to plugins.
//!
//! [`config`] reads the daemon's TOML; [`manifest`] reads a plugin's;
//! [`plugins`] loads the plugins directory; [`daemon`] wires it all together.
//! [`admin`] serves the operator API (events, jobs, dead letters, replay,
//! [`metrics`]) on its own listener.
#![deny(missing_docs)]

pub mod admin;
pub mod capabilities;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod ingress;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod plugins;
pub mod queue;
pub mod runtime;
pub mod store;
pub mod time;
