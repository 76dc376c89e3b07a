//! What a plugin may reach, and the services behind it.
//!
//! - [`allowlist`]: the manifest's `[[http]]` rules (deny by default).
//! - [`outbound`]: sends a plugin's `wasi:http` request after checking it,
//!   with credentials, timeouts, a response-size cap and the
//!   per-destination [`rate`] limit.
//! - [`kv`]: each plugin's key-value store.
//!
//! [`Sandbox`] is the operator's `[sandbox]` section: ceilings for the
//! limits a manifest may ask for, outbound timeouts and caps, store sizes.
//! [`Capabilities`] holds the daemon-wide services; the runtime builds each
//! call's state from it, and deliveries are authorized through it too.

pub mod allowlist;
pub mod delivery;
pub mod kv;
pub mod outbound;
pub mod rate;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::credentials::Credentials;
use crate::manifest::{Limits, Manifest};

/// The operator's `[sandbox]` settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sandbox {
    /// Largest `limits.memory_mb` a manifest may ask for.
    pub max_memory_mb: u32,
    /// Largest `limits.timeout_ms` (wall time per call).
    pub max_timeout_ms: u64,
    /// Largest `limits.cpu_ms` (guest execution time per call).
    pub max_cpu_ms: u64,
    /// Time to connect to a destination, ms.
    pub connect_timeout_ms: u64,
    /// Time from request sent to response headers, ms.
    pub first_byte_timeout_ms: u64,
    /// Longest pause inside a response body, ms.
    pub between_bytes_timeout_ms: u64,
    /// Largest response body a plugin may receive, bytes.
    pub max_response_bytes: u64,
    /// Largest request body a plugin may send, bytes.
    pub max_request_bytes: u64,
    /// Requests per second to one destination (`host:port`), all plugins.
    pub rate_per_sec: f64,
    /// Requests allowed at once to one destination before spacing starts.
    pub rate_burst: u32,
    /// Longest key in a plugin's store, bytes.
    pub kv_max_key_bytes: usize,
    /// Largest value in a plugin's store, bytes.
    pub kv_max_value_bytes: usize,
    /// Total size of one plugin's store, bytes.
    pub kv_max_total_bytes: u64,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self {
            max_memory_mb: crate::manifest::MAX_MEMORY_MB,
            max_timeout_ms: crate::manifest::MAX_TIMEOUT_MS,
            max_cpu_ms: crate::manifest::MAX_TIMEOUT_MS,
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 15_000,
            between_bytes_timeout_ms: 10_000,
            max_response_bytes: 10 * 1024 * 1024,
            max_request_bytes: 10 * 1024 * 1024,
            rate_per_sec: 10.0,
            rate_burst: 20,
            kv_max_key_bytes: 512,
            kv_max_value_bytes: 64 * 1024,
            kv_max_total_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Sandbox {
    /// The limits a call of this manifest runs with: what it asks for,
    /// within the operator's ceilings.
    pub fn effective_limits(&self, requested: Limits) -> Limits {
        Limits {
            memory_mb: requested.memory_mb.min(self.max_memory_mb.max(1)),
            timeout_ms: requested.timeout_ms.min(self.max_timeout_ms.max(1)),
            cpu_ms: requested.cpu_ms.min(self.max_cpu_ms.max(1)),
        }
    }

    /// Why a manifest asks for more than the ceilings, if it does; the
    /// plugin still runs, at the ceiling.
    pub fn over_ceiling(&self, requested: Limits) -> Option<String> {
        let e = self.effective_limits(requested);
        (e != requested).then(|| {
            format!(
                "asks for limits {requested:?}, above the operator's [sandbox] ceilings; runs with {e:?}"
            )
        })
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub(crate) fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }
    pub(crate) fn between_bytes_timeout(&self) -> Duration {
        Duration::from_millis(self.between_bytes_timeout_ms)
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
    pub kv: Option<kv::KvStore>,
}

impl Default for Capabilities {
    /// No credentials, no store, default settings: what a runtime uses
    /// before the daemon gives it the real ones.
    fn default() -> Self {
        Self::new(Sandbox::default(), Credentials::default(), None)
    }
}

impl Capabilities {
    /// Services over `credentials`, with key-value stores in `db`'s tree
    /// `kv` when a database is given.
    pub fn new(sandbox: Sandbox, credentials: Credentials, db: Option<&sled::Db>) -> Self {
        let kv = db.and_then(|db| match db.open_tree("kv") {
            Ok(tree) => Some(kv::KvStore::new(
                tree,
                kv::KvLimits {
                    max_key_bytes: sandbox.kv_max_key_bytes,
                    max_value_bytes: sandbox.kv_max_value_bytes,
                    max_total_bytes: sandbox.kv_max_total_bytes,
                },
            )),
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

    /// Checks a manifest against the daemon: every credential a rule names
    /// must be configured. Limits above the ceilings are only warned about:
    /// the plugin runs at the ceiling.
    pub fn check_manifest(&self, manifest: &Manifest) -> Result<(), String> {
        if let Some(why) = self.sandbox.over_ceiling(manifest.limits) {
            tracing::warn!(plugin = %manifest.name, "{why}");
        }
        for r in manifest.http.rules() {
            if let Some(c) = &r.credential
                && !self.credentials.contains(c)
            {
                return Err(format!(
                    "[[http]] rule for `{}` names credential `{c}`, which the daemon configuration \
                         does not define; add `[credentials.{c}]` to it",
                    r.host
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_gets_what_it_asks_for_within_the_operator_ceilings() {
        let sandbox: Sandbox = toml::from_str("max_memory_mb = 128\nmax_cpu_ms = 1000\n").unwrap();
        let asked = Limits {
            memory_mb: 512,
            timeout_ms: 3_000,
            cpu_ms: 200,
        };
        let got = sandbox.effective_limits(asked);
        assert_eq!(
            got,
            Limits {
                memory_mb: 128,
                timeout_ms: 3_000,
                cpu_ms: 200
            }
        );
        assert!(
            sandbox
                .over_ceiling(asked)
                .unwrap()
                .contains("memory_mb: 512")
        );
        assert_eq!(sandbox.over_ceiling(got), None);
    }

    #[test]
    fn unknown_sandbox_keys_are_errors() {
        assert!(toml::from_str::<Sandbox>("max_memory = 1\n").is_err());
    }

    #[test]
    fn a_rule_naming_an_unconfigured_credential_is_reported() {
        let m = Manifest::parse(
            "name = \"p\"\nversion = \"1\"\n[[http]]\nhost = \"api.example.com\"\ncredential = \"books\"\n",
            std::path::Path::new("/p/plugin.toml"),
        )
        .unwrap();
        let e = Capabilities::default().check_manifest(&m).unwrap_err();
        assert!(e.contains("[credentials.books]"), "{e}");
    }
}
