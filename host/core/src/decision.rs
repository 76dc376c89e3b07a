//! What a plugin decides about an event.

use serde::{Deserialize, Serialize};

/// A request a plugin asked the host to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    /// HTTP method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers.
    #[serde(with = "crate::bytes::pairs")]
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Idempotency key, when the plugin gave one.
    pub idempotency_key: Option<String>,
}

/// What a plugin decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not for this plugin (0.2 `skip`, 0.1 `filter` returning false).
    Filtered,
    /// Nothing to do, with the plugin's reason.
    Drop(String),
    /// Deliver these requests.
    Deliver(Vec<Outbound>),
}
