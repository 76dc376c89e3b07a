//! The operator's `[sandbox]` section: ceilings for the limits a manifest
//! may ask for, outbound timeouts and caps, key-value store sizes, what one
//! call may log; and the host memory a call may hold, which follows the
//! plugin's own memory limit.

use std::time::Duration;

use serde::Deserialize;

use crate::manifest::Limits;

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
    /// Lines one call may write to the daemon's log; the rest are dropped
    /// and counted.
    pub log_max_lines: u32,
    /// Bytes one call may write to the daemon's log, its lines together.
    pub log_max_bytes: u64,
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
            log_max_lines: 1000,
            log_max_bytes: 256 * 1024,
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

    /// Host memory a call of a plugin with these (effective) limits may
    /// hold on its behalf: header maps, request and response bodies and
    /// buffers, connections. As much as the plugin may hold itself, its
    /// `memory_mb`, so raising that limit raises both.
    pub fn host_budget_bytes(&self, effective: Limits) -> usize {
        (effective.memory_mb as usize).saturating_mul(1024 * 1024)
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

    /// [`Sandbox::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// [`Sandbox::first_byte_timeout_ms`] as a duration.
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }
    /// [`Sandbox::between_bytes_timeout_ms`] as a duration.
    pub fn between_bytes_timeout(&self) -> Duration {
        Duration::from_millis(self.between_bytes_timeout_ms)
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
    fn a_call_may_make_the_host_hold_as_much_as_the_plugin_may_hold_itself() {
        let sandbox: Sandbox = toml::from_str("max_memory_mb = 128\n").unwrap();
        let limits = sandbox.effective_limits(Limits {
            memory_mb: 512,
            ..Limits::default()
        });
        assert_eq!(sandbox.host_budget_bytes(limits), 128 * 1024 * 1024);
    }

    #[test]
    fn unknown_sandbox_keys_are_errors() {
        assert!(toml::from_str::<Sandbox>("max_memory = 1\n").is_err());
    }
}
