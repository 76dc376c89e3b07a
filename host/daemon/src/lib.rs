//! fieldhook: a self-hosted webhook daemon for field-service platforms.
//!
//! This crate is the daemon itself: it composes the configuration from the
//! sections each layer owns ([`config`]), serves webhooks ([`ingress`]) and
//! the operator API ([`admin`]), and wires the layers together
//! ([`daemon`]). The layers, lowest first, are crates of their own:
//!
//! | crate | what |
//! |---|---|
//! | `fieldhook-core` | events and ids, decisions, task payloads, time, secrets |
//! | `fieldhook-vendors` | vendor verifiers: raw bytes in, verdict out |
//! | `fieldhook-policy` | manifests, outbound grants, sandbox ceilings (pure) |
//! | `fieldhook-store` | events (group commit), task log, kv, tokens: sled |
//! | `fieldhook-credentials` | credentials added to plugins' requests |
//! | `fieldhook-capabilities` | policed outbound HTTP, rate limits, kv |
//! | `fieldhook-runtime` | wasmtime, contract versions, plugins directory |
//! | `fieldhook-pipeline` | fan-out, jobs, deliveries, replay, retention |
//!
//! The path of one event:
//! 1. [`ingress`] takes `POST /hooks/{source}`; the source's vendor verifier
//!    checks the raw bytes and normalizes them.
//! 2. The store makes the event durable before the 2xx, sharing one flush
//!    between concurrent requests (group commit).
//! 3. The pipeline fans each event out to the subscribed plugins as jobs,
//!    runs them in the runtime, and delivers the requests they return.
#![deny(missing_docs)]

pub mod admin;
pub mod config;
pub mod daemon;
pub mod ingress;
pub mod listener;
pub mod memory;
pub mod open_files;
pub mod reload;
