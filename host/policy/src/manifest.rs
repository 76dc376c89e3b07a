//! A plugin's manifest (`plugin.toml`): who it is, what it subscribes to,
//! its limits and its configuration values.
//!
//! Free of wasmtime so the rules are unit-testable.
//!
//! ```toml
//! name = "accounting-sync"
//! version = "0.1.0"
//! component = "accounting_sync.wasm"   # relative to the manifest
//!
//! [[subscriptions]]
//! source = "hcp"                      # or "*"
//! kinds = ["job.completed", "invoice.*"]  # absent: every kind
//!
//! [limits]
//! memory_mb = 64
//! timeout_ms = 5000                   # wall time of one call
//! cpu_ms = 2000                       # time executing guest code
//!
//! [[http]]                            # outbound grants, see crate::grants
//! host = "api.servicetitan.io"
//! methods = ["GET"]
//! path = "/jpm/v2/"
//! credential = "servicetitan"
//!
//! [config]
//! endpoint = "https://books.example.com/api/jobs"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::grants::{Allowlist, HttpRule};
use crate::schedule::{RawSchedule, Schedule};

/// The WIT package versions this host serves.
pub const SUPPORTED_WIT: &[&str] = &["0.1.0", "0.2.0", "0.3.0"];

/// A manifest that cannot be used, naming the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Manifest path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Not valid TOML, or not the manifest schema.
    #[error("invalid manifest {path}: {message}")]
    Parse {
        /// Manifest path.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("manifest {path}: {message}")]
    Invalid {
        /// Manifest path.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A validated plugin manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Plugin name, unique in the daemon (`[a-z0-9-_]`).
    pub name: String,
    /// Plugin version (free text; shown in logs and the admin API).
    pub version: String,
    /// The component file, resolved against the manifest's directory.
    pub component: PathBuf,
    /// What the plugin receives. Empty: nothing.
    pub subscriptions: Vec<Subscription>,
    /// Resource limits for one call.
    pub limits: Limits,
    /// Configuration values the plugin reads through the `config` import.
    pub config: BTreeMap<String, String>,
    /// Outbound HTTP grants (`[[http]]`); empty: none.
    pub http: Allowlist,
    /// How the runtime runs this plugin (`[runtime]`).
    pub runtime: RuntimeSettings,
    /// When its `scheduled` entry point runs (`[[schedules]]`); empty: never.
    pub schedules: Vec<Schedule>,
}

/// `[runtime]`: fresh instance per event, or warm instances reused.
///
/// ```toml
/// [runtime]
/// instances = "reuse"          # or "fresh"; absent: chosen by component size
/// recycle_after_calls = 1000   # a reused instance is replaced after this many calls
/// recycle_memory_mb = 48       # ... or once its memory grew past this
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Instance policy; `None` lets the runtime choose by component size.
    pub instances: Option<InstanceMode>,
    /// Calls a reused instance serves before it is replaced.
    pub recycle_after_calls: u32,
    /// Memory past which a reused instance is replaced, MiB; absent: three
    /// quarters of `limits.memory_mb`.
    pub recycle_memory_mb: Option<u32>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            instances: None,
            recycle_after_calls: 1000,
            recycle_memory_mb: None,
        }
    }
}

/// Whether each event gets a fresh instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceMode {
    /// A new instance per event: nothing carries over (best for small guests).
    Fresh,
    /// Warm instances reused across events (JS, Python: start-up dominates).
    Reuse,
}

/// Events from one source (or all), optionally of some kinds only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Source name, or `*` for every source.
    pub source: String,
    /// Kind patterns: exact (`job.completed`), prefix (`job.*`) or `*`.
    /// Absent or empty: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// Limits for one plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory ceiling, MiB; also the host memory one call may hold
    /// on the plugin's behalf (header maps, bodies, connections).
    pub memory_mb: u32,
    /// Wall time for one call, including its outbound HTTP, ms.
    pub timeout_ms: u64,
    /// Time spent executing the plugin's code in one call, ms (waiting on
    /// outbound HTTP does not count).
    pub cpu_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: 64,
            timeout_ms: 10_000,
            cpu_ms: 5_000,
        }
    }
}

/// Ceilings an operator allows manifests to ask for.
pub const MAX_MEMORY_MB: u32 = 1024;
/// Longest call a manifest may ask for, ms.
pub const MAX_TIMEOUT_MS: u64 = 120_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    #[serde(default = "default_component")]
    component: PathBuf,
    #[serde(default)]
    subscriptions: Vec<Subscription>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    http: Vec<HttpRule>,
    #[serde(default)]
    runtime: RuntimeSettings,
    #[serde(default)]
    schedules: Vec<RawSchedule>,
}

fn default_component() -> PathBuf {
    PathBuf::from("plugin.wasm")
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` locates the component and names errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if raw.name.is_empty()
            || !raw
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid(format!(
                "name `{}` must be non-empty and use only a-z, 0-9, `-` and `_`",
                raw.name
            )));
        }
        if raw.limits.memory_mb == 0 || raw.limits.memory_mb > MAX_MEMORY_MB {
            return Err(invalid(format!(
                "limits.memory_mb = {} is outside 1..={MAX_MEMORY_MB}",
                raw.limits.memory_mb
            )));
        }
        if raw.limits.timeout_ms == 0 || raw.limits.timeout_ms > MAX_TIMEOUT_MS {
            return Err(invalid(format!(
                "limits.timeout_ms = {} is outside 1..={MAX_TIMEOUT_MS}",
                raw.limits.timeout_ms
            )));
        }
        if raw.limits.cpu_ms == 0 || raw.limits.cpu_ms > MAX_TIMEOUT_MS {
            return Err(invalid(format!(
                "limits.cpu_ms = {} is outside 1..={MAX_TIMEOUT_MS}",
                raw.limits.cpu_ms
            )));
        }
        let http = Allowlist::new(raw.http).map_err(|e| invalid(e.to_string()))?;
        if raw.runtime.recycle_after_calls == 0 {
            return Err(invalid(
                "runtime.recycle_after_calls must be at least 1".into(),
            ));
        }
        if let Some(mb) = raw.runtime.recycle_memory_mb
            && (mb == 0 || mb > raw.limits.memory_mb)
        {
            return Err(invalid(format!(
                "runtime.recycle_memory_mb = {mb} is outside 1..=limits.memory_mb ({})",
                raw.limits.memory_mb
            )));
        }
        let mut config = BTreeMap::new();
        for (k, v) in raw.config {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    v.to_string()
                }
                other => {
                    return Err(invalid(format!(
                        "config.{k} is a {}; config values are strings, numbers or booleans",
                        other.type_str()
                    )));
                }
            };
            config.insert(k, text);
        }
        let mut schedules: Vec<Schedule> = Vec::new();
        for raw in raw.schedules {
            let schedule = raw.validate().map_err(invalid)?;
            if schedules.iter().any(|s| s.name == schedule.name) {
                return Err(invalid(format!(
                    "schedules: `{}` is declared twice; names must be unique",
                    schedule.name
                )));
            }
            schedules.push(schedule);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(Manifest {
            name: raw.name,
            version: raw.version,
            component: base.join(raw.component),
            subscriptions: raw.subscriptions,
            limits: raw.limits,
            config,
            http,
            runtime: raw.runtime,
            schedules,
        })
    }

    /// Whether an event of `kind` from `source` goes to this plugin.
    pub fn subscribes_to(&self, source: &str, kind: &str) -> bool {
        self.subscriptions.iter().any(|s| s.matches(source, kind))
    }
}

impl Subscription {
    /// Whether this subscription covers an event.
    pub fn matches(&self, source: &str, kind: &str) -> bool {
        (self.source == "*" || self.source == source)
            && (self.kinds.is_empty() || self.kinds.iter().any(|p| kind_matches(p, kind)))
    }
}

fn kind_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/plugins/demo/plugin.toml"))
    }

    const BASE: &str = "name = \"demo\"\nversion = \"1.0.0\"\n";

    #[test]
    fn the_component_defaults_to_plugin_wasm_beside_the_manifest() {
        let m = manifest(BASE).unwrap();
        assert_eq!(m.component, Path::new("/plugins/demo/plugin.wasm"));
        assert_eq!(m.limits, Limits::default());
    }

    #[test]
    fn a_plugin_without_subscriptions_receives_nothing() {
        assert!(
            !manifest(BASE)
                .unwrap()
                .subscribes_to("hcp", "job.completed")
        );
    }

    #[test]
    fn subscriptions_match_source_and_kind_patterns() {
        let m = manifest(&format!(
            "{BASE}[[subscriptions]]\nsource = \"hcp\"\nkinds = [\"job.completed\", \"invoice.*\"]\n\
             [[subscriptions]]\nsource = \"*\"\nkinds = [\"lead.created\"]\n"
        ))
        .unwrap();
        assert!(m.subscribes_to("hcp", "job.completed"));
        assert!(m.subscribes_to("hcp", "invoice.paid"));
        assert!(!m.subscribes_to("hcp", "job.updated"));
        assert!(!m.subscribes_to("other", "job.completed"));
        assert!(m.subscribes_to("other", "lead.created"));
    }

    #[test]
    fn a_subscription_without_kinds_takes_every_kind() {
        let m = manifest(&format!("{BASE}[[subscriptions]]\nsource = \"st\"\n")).unwrap();
        assert!(m.subscribes_to("st", "anything.at_all"));
    }

    #[test]
    fn config_values_are_strings_numbers_or_booleans() {
        let m = manifest(&format!(
            "{BASE}[config]\nendpoint = \"http://x\"\nretries = 3\ndry = true\n"
        ))
        .unwrap();
        assert_eq!(m.config["endpoint"], "http://x");
        assert_eq!(m.config["retries"], "3");
        assert_eq!(m.config["dry"], "true");
        assert!(manifest(&format!("{BASE}[config]\nlist = [1]\n")).is_err());
    }

    #[test]
    fn limits_outside_the_ceilings_are_refused_with_the_key_to_fix() {
        let e = manifest(&format!("{BASE}[limits]\nmemory_mb = 99999\n")).unwrap_err();
        assert!(e.to_string().contains("limits.memory_mb"), "{e}");
        let e = manifest(&format!("{BASE}[limits]\ntimeout_ms = 0\n")).unwrap_err();
        assert!(e.to_string().contains("limits.timeout_ms"), "{e}");
    }

    #[test]
    fn http_grants_are_read_and_validated() {
        let m = manifest(&format!(
            "{BASE}[[http]]\nhost = \"api.servicetitan.io\"\nmethods = [\"GET\"]\ncredential = \"st\"\n"
        ))
        .unwrap();
        assert_eq!(m.http.rules()[0].credential.as_deref(), Some("st"));
        let e = manifest(&format!("{BASE}[[http]]\nhost = \"x\"\nscheme = \"ftp\"\n")).unwrap_err();
        assert!(e.to_string().contains("http rule 0"), "{e}");
    }

    #[test]
    fn the_runtime_section_picks_the_instance_policy() {
        assert_eq!(manifest(BASE).unwrap().runtime, RuntimeSettings::default());
        let m = manifest(&format!(
            "{BASE}[runtime]\ninstances = \"reuse\"\nrecycle_after_calls = 5\n"
        ))
        .unwrap();
        assert_eq!(m.runtime.instances, Some(InstanceMode::Reuse));
        assert_eq!(m.runtime.recycle_after_calls, 5);
        assert!(manifest(&format!("{BASE}[runtime]\ninstances = \"warm\"\n")).is_err());
        let e = manifest(&format!("{BASE}[runtime]\nrecycle_memory_mb = 999\n")).unwrap_err();
        assert!(e.to_string().contains("runtime.recycle_memory_mb"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_names_are_errors() {
        assert!(manifest(&format!("{BASE}subscribe = []\n")).is_err());
        assert!(manifest("name = \"Bad Name\"\nversion = \"1\"\n").is_err());
    }

    #[test]
    fn schedules_are_read_and_a_bad_one_names_its_key() {
        let m = manifest(
            r#"name = "p"
version = "1"
[[schedules]]
name = "reconcile"
every = "5m"
missed = "skip"
source = "st"
"#,
        )
        .unwrap();
        assert_eq!(m.schedules.len(), 1);
        assert_eq!(m.schedules[0].name, "reconcile");
        assert_eq!(m.schedules[0].source.as_deref(), Some("st"));
        let e = manifest(
            r#"name = "p"
version = "1"
[[schedules]]
name = "reconcile"
every = "5m"
[[schedules]]
name = "reconcile"
cron = "0 * * * *"
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`reconcile` is declared twice"), "{e}");
        let e = manifest(
            r#"name = "p"
version = "1"
[[schedules]]
name = "reconcile"
every = "often"
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("schedules `reconcile`: every"), "{e}");
    }
}
