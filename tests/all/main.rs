//! fieldhook's end-to-end tests: one test binary (one link of wasmtime),
//! a module per area. Most start the real `fieldhook` binary on 127.0.0.1
//! with random ports, against fake vendors and destinations; the guest
//! plugins are built for wasm32-wasip2 on first use ([`support::guest`]).
// Tests may unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod support;

mod capabilities;
mod console;
mod contract_versions;
mod durability;
mod host_limits;
mod hot_reload;
mod instances;
mod languages;
mod listener;
mod operations;
mod plugin_run;
mod plugin_tools;
mod production;
mod schedules;
mod servicem8_job_sync;
mod spine;
mod vendors;
