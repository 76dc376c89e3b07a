//! The bindings whose host imports [`super::state::PluginState`] implements.
//!
//! Each WIT version the host serves has its own module (`v0_1`, later
//! `v0_2`...) with its generated bindings and the conversions between its
//! types and the host's. Imports are shared: a newer version's bindgen reuses
//! the older interfaces it keeps unchanged (bindgen's `with:`), so one
//! `PluginState` serves every version. This module names the version whose
//! import traits that state implements.

pub use super::v0_1::bindings::*;
