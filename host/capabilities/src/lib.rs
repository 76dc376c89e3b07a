//! What a plugin may reach, and the services behind it.
//!
//! - [`outbound`]: sends a plugin's `wasi:http` request after checking it
//!   against the manifest's grants ([`fieldhook_policy::grants`]), with
//!   credentials, timeouts, a response-size cap and the per-destination
//!   [`rate`] limit. [`outbound::authorize`] is the same check for any
//!   request, given plain values: the pipeline authorizes deliveries with it.
//! - [`budget`]: the host memory a plugin's calls may hold (requests,
//!   responses, header maps), sized by its memory limit.
//! - [`refusals`]: what the host refused during a call, logged a few in
//!   full and the rest counted.
//! - the plugin's key-value store ([`fieldhook_store::kv`]), with the
//!   operator's size limits.
//!
//! [`Capabilities`] holds the daemon-wide services; the runtime builds each
//! call's state from it. The operator's ceilings and outbound limits are
//! [`Sandbox`], the `[sandbox]` section, which lives with the policy rules.
#![deny(missing_docs)]

pub mod binding;
pub mod budget;
pub mod outbound;
pub mod rate;
pub mod refusals;

use std::sync::Arc;

use fieldhook_credentials::Credentials;
use fieldhook_policy::manifest::Manifest;
pub use fieldhook_policy::sandbox::Sandbox;
use fieldhook_store::EventStore;
use fieldhook_store::kv::{KvLimits, KvStore};

fn kv_limits(sandbox: &Sandbox) -> KvLimits {
    KvLimits {
        max_key_bytes: sandbox.kv_max_key_bytes,
        max_value_bytes: sandbox.kv_max_value_bytes,
        max_total_bytes: sandbox.kv_max_total_bytes,
    }
}

/// The capabilities in force. Reloading the configuration replaces them
/// whole; a call already running keeps the ones it started with, so no
/// call ever sees half of one configuration and half of another.
#[derive(Debug, Clone)]
pub struct InForce(Arc<std::sync::RwLock<Arc<Capabilities>>>);

impl InForce {
    /// Puts `capabilities` in force.
    pub fn new(capabilities: Arc<Capabilities>) -> Self {
        Self(Arc::new(std::sync::RwLock::new(capabilities)))
    }

    /// The capabilities in force now.
    pub fn get(&self) -> Arc<Capabilities> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `capabilities` in force for every call from now on.
    pub fn replace(&self, capabilities: Arc<Capabilities>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = capabilities;
    }
}

impl From<Arc<Capabilities>> for InForce {
    fn from(capabilities: Arc<Capabilities>) -> Self {
        Self::new(capabilities)
    }
}

/// The daemon-wide services behind plugins' capabilities.
#[derive(Debug)]
pub struct Capabilities {
    /// Operator settings.
    pub sandbox: Sandbox,
    /// Configured credentials.
    pub credentials: Arc<Credentials>,
    /// Per-destination rate limit.
    pub rates: rate::RateLimiter,
    /// Plugins' key-value stores; `None` when the daemon runs without a store.
    pub kv: Option<KvStore>,
}

impl Capabilities {
    /// Services over `credentials`, with key-value stores in `store` when
    /// one is given (tools that run a plugin offline give none: its kv
    /// calls then fail as unavailable).
    pub fn new(sandbox: Sandbox, credentials: Credentials, store: Option<&EventStore>) -> Self {
        let limits = kv_limits(&sandbox);
        let kv = store.and_then(|store| match KvStore::open(store, limits) {
            Ok(kv) => Some(kv),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the plugins' key-value tree; kv calls will fail");
                None
            }
        });
        Self {
            rates: rate::RateLimiter::new(sandbox.rate_per_sec, sandbox.rate_burst),
            sandbox,
            credentials: Arc::new(credentials),
            kv,
        }
    }

    /// The same services under a reloaded configuration: new ceilings and
    /// credentials, the same key-value store (at the new size limits).
    /// Rate buckets start afresh at the new rate.
    pub fn reconfigured(&self, sandbox: Sandbox, credentials: Credentials) -> Self {
        Self {
            rates: rate::RateLimiter::new(sandbox.rate_per_sec, sandbox.rate_burst),
            kv: self
                .kv
                .as_ref()
                .map(|kv| kv.with_limits(kv_limits(&sandbox))),
            sandbox,
            credentials: Arc::new(credentials),
        }
    }

    /// No credentials and no key-value store, within `sandbox`: for tools
    /// and tests that run a plugin outside the daemon.
    pub fn offline(sandbox: Sandbox) -> Self {
        Self::new(sandbox, Credentials::default(), None)
    }

    /// Checks a manifest against the daemon: every credential a rule names
    /// must be configured, for every host and path the rule reaches
    /// ([`binding`]). Limits above the ceilings are only warned about: the
    /// plugin runs at the ceiling.
    pub fn check_manifest(&self, manifest: &Manifest) -> Result<(), String> {
        if let Some(why) = self.sandbox.over_ceiling(manifest.limits) {
            tracing::warn!(plugin = %manifest.name, "{why}");
        }
        for r in manifest.http.rules() {
            let Some(c) = &r.credential else {
                continue;
            };
            let Some(spec) = self.credentials.spec(c) else {
                return Err(format!(
                    "[[http]] rule for `{}` names credential `{c}`, which the daemon configuration \
                         does not define; add `[credentials.{c}]` to it",
                    r.host
                ));
            };
            if !binding::covers(spec, r) {
                return Err(binding::refusal(spec, r));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_naming_an_unconfigured_credential_is_reported() {
        let m = Manifest::parse(
            "name = \"p\"\nversion = \"1\"\n[[http]]\nhost = \"api.example.com\"\ncredential = \"books\"\n",
            std::path::Path::new("/p/plugin.toml"),
        )
        .unwrap();
        let caps = Capabilities::offline(Sandbox::default());
        let e = caps.check_manifest(&m).unwrap_err();
        assert!(e.contains("[credentials.books]"), "{e}");
    }
}
