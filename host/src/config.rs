//! The daemon's configuration file (TOML).
//!
//! Secrets are never required inline: each source names an environment
//! variable or a file, and a second one may be given for key rotation.
//! Relative paths are resolved against the configuration file's directory,
//! so a configuration can be moved together with its plugins and secrets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::ingress::vendors::{self, Secret, Vendor};

/// Everything wrong with a configuration, each naming the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path of the configuration file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// Path of the configuration file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// A `[credentials.NAME]` entry is wrong.
    #[error(transparent)]
    Credential(#[from] crate::credentials::CredentialConfigError),
    /// A source is wrong.
    #[error("source `{source_name}`: {message}")]
    Source {
        /// The source's name.
        source_name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A loaded configuration, secrets resolved and verifiers built.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the webhook listener.
    pub listen: SocketAddr,
    /// Where sled keeps events and queues.
    pub data_dir: PathBuf,
    /// Directory of plugins (one sub-directory per plugin).
    pub plugins_dir: PathBuf,
    /// Largest accepted body, bytes.
    pub max_body_bytes: usize,
    /// A second delivery with the same dedupe key inside this window is
    /// answered 200 and not stored again.
    pub dedupe_window_secs: u64,
    /// Worker counts.
    pub workers: Workers,
    /// Outbound delivery settings.
    pub delivery: Delivery,
    /// Development helpers.
    pub dev: Dev,
    /// Configured webhook sources.
    pub sources: Vec<Source>,
    /// Plugin sandbox: limit ceilings, outbound HTTP, key-value sizes.
    pub sandbox: crate::capabilities::Sandbox,
    /// Credentials the host adds to plugins' requests (`[credentials.NAME]`).
    pub credentials: Vec<crate::credentials::CredentialSpec>,
    /// Per-destination delivery policies (`[[destinations]]`).
    pub destinations: Vec<crate::pipeline::policy::DestinationConfig>,
    /// Per-entity debounce and ordering (`[[entities]]`).
    pub entities: Vec<crate::pipeline::entities::EntityRule>,
    /// Per-plugin job retry policies (`[[plugin_retries]]`).
    pub plugin_retries: Vec<crate::pipeline::policy::PluginRetryConfig>,
    /// How long events and finished work are kept (`[retention]`).
    pub retention: crate::pipeline::retention::Retention,
    /// The admin API listener (`[admin]`), off when absent.
    pub admin: Option<crate::admin::AdminSettings>,
}

/// Worker counts for the two queues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workers {
    /// Concurrent plugin runs.
    pub jobs: usize,
    /// Concurrent outbound deliveries.
    pub deliveries: usize,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            jobs: 4,
            deliveries: 8,
        }
    }
}

/// How outbound requests returned by plugins are delivered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// Per-request timeout, seconds.
    pub timeout_secs: u64,
    /// Attempts per delivery before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry, milliseconds (doubles each attempt).
    pub retry_base_ms: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            timeout_secs: 10,
            max_attempts: 2,
            retry_base_ms: 1_000,
        }
    }
}

/// Development helpers, off by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dev {
    /// Serve `POST /_sink/{name}` on the webhook listener: it logs what it
    /// receives and `GET /_sink/{name}` lists it. Lets the quick start show a
    /// delivery arriving without any external service.
    pub sink: bool,
}

/// A webhook source: where a vendor posts, and how to verify it.
#[derive(Debug, Clone)]
pub struct Source {
    /// Name in the URL: `/hooks/{name}`.
    pub name: String,
    /// The verifier for this source's vendor.
    pub vendor: Arc<dyn Vendor>,
    /// Secrets as loaded (kept for `fieldhook send`, which signs samples).
    pub secrets: Vec<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_plugins_dir")]
    plugins_dir: PathBuf,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(default = "default_dedupe_window")]
    dedupe_window_secs: u64,
    #[serde(default)]
    workers: Workers,
    #[serde(default)]
    delivery: Delivery,
    #[serde(default)]
    dev: Dev,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    sandbox: crate::capabilities::Sandbox,
    #[serde(default)]
    credentials: std::collections::BTreeMap<String, crate::credentials::RawCredential>,
    #[serde(default)]
    destinations: Vec<crate::pipeline::policy::DestinationConfig>,
    #[serde(default)]
    entities: Vec<crate::pipeline::entities::EntityRule>,
    #[serde(default)]
    plugin_retries: Vec<crate::pipeline::policy::PluginRetryConfig>,
    #[serde(default)]
    retention: crate::pipeline::retention::Retention,
    admin: Option<crate::admin::RawAdmin>,
}

#[derive(Deserialize)]
struct RawSource {
    name: String,
    vendor: String,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    previous_secret_env: Option<String>,
    previous_secret_file: Option<PathBuf>,
    /// Everything else belongs to the vendor, which rejects unknown keys.
    #[serde(flatten)]
    options: toml::Table,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_plugins_dir() -> PathBuf {
    PathBuf::from("plugins")
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_dedupe_window() -> u64 {
    3 * 24 * 3600
}

impl Config {
    /// Reads, validates and resolves a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses configuration text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let mut sources: Vec<Source> = Vec::with_capacity(raw.sources.len());
        for s in raw.sources {
            let source = build_source(s, base)?;
            if sources.iter().any(|o| o.name == source.name) {
                return Err(ConfigError::Source {
                    source_name: source.name,
                    message: "defined twice; source names must be unique".into(),
                });
            }
            sources.push(source);
        }
        let invalid = |message: String| ConfigError::Parse {
            path: PathBuf::new(),
            message,
        };
        crate::pipeline::policy::validate(&raw.destinations).map_err(invalid)?;
        crate::pipeline::entities::validate(&raw.entities).map_err(invalid)?;
        let admin = raw
            .admin
            .map(|a| a.resolve(base))
            .transpose()
            .map_err(|m| invalid(format!("[admin]: {m}")))?;
        Ok(Config {
            listen: raw.listen,
            data_dir: base.join(raw.data_dir),
            plugins_dir: base.join(raw.plugins_dir),
            max_body_bytes: raw.max_body_bytes,
            dedupe_window_secs: raw.dedupe_window_secs,
            workers: raw.workers,
            delivery: raw.delivery,
            dev: raw.dev,
            sources,
            sandbox: raw.sandbox,
            credentials: crate::credentials::config::resolve(raw.credentials, base)?,
            destinations: raw.destinations,
            entities: raw.entities,
            plugin_retries: raw.plugin_retries,
            retention: raw.retention,
            admin,
        })
    }

    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }
}

fn build_source(raw: RawSource, base: &Path) -> Result<Source, ConfigError> {
    let err = |message: String| ConfigError::Source {
        source_name: raw.name.clone(),
        message,
    };
    if raw.name.is_empty()
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(err(
            "name must be non-empty and use only a-z, 0-9, `-` and `_` (it is a URL path segment)"
                .into(),
        ));
    }
    let current = load_secret(raw.secret_env.as_deref(), raw.secret_file.as_deref(), base)
        .map_err(&err)?
        .ok_or_else(|| {
            err("no secret: set `secret_env = \"VAR\"` or `secret_file = \"path\"`".into())
        })?;
    let mut secrets = vec![current];
    if let Some(previous) = load_secret(
        raw.previous_secret_env.as_deref(),
        raw.previous_secret_file.as_deref(),
        base,
    )
    .map_err(|m| err(format!("previous secret: {m}")))?
    {
        secrets.push(previous);
    }
    let vendor = vendors::build(&raw.vendor, secrets.clone(), raw.options.clone())
        .map_err(|e| err(e.to_string()))?;
    Ok(Source {
        name: raw.name,
        vendor: Arc::from(vendor),
        secrets,
    })
}

/// Loads a secret from an environment variable or a file (trailing newline
/// trimmed, as editors and `echo` add one).
fn load_secret(
    env: Option<&str>,
    file: Option<&Path>,
    base: &Path,
) -> Result<Option<Secret>, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err("give either `secret_env` or `secret_file`, not both".into()),
        (Some(var), None) => match std::env::var_os(var) {
            Some(v) if !v.is_empty() => Ok(Some(Secret(v.into_encoded_bytes()))),
            _ => Err(format!(
                "environment variable `{var}` is not set or empty (export it before starting)"
            )),
        },
        (None, Some(path)) => {
            let path = base.join(path);
            let mut bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            if bytes.is_empty() {
                return Err(format!("secret file {} is empty", path.display()));
            }
            Ok(Some(Secret(bytes)))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/fieldhook"))
    }

    #[test]
    fn defaults_apply_and_paths_resolve_against_the_config_directory() {
        let c = parse("").expect("empty config is valid");
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.data_dir, Path::new("/etc/fieldhook/data"));
        assert_eq!(c.plugins_dir, Path::new("/etc/fieldhook/plugins"));
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        assert!(c.sources.is_empty());
    }

    #[test]
    fn a_secret_comes_from_the_environment() {
        // SAFETY: tests in this module use distinct variable names.
        unsafe {
            std::env::set_var(
                "FIELDHOOK_TEST_SECRET_A",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
        };
        let c = parse(
            r#"
            [[sources]]
            name = "svix"
            vendor = "standard-webhooks"
            secret_env = "FIELDHOOK_TEST_SECRET_A"
            "#,
        )
        .expect("valid");
        assert_eq!(c.sources[0].name, "svix");
        assert_eq!(c.sources[0].vendor.name(), "standard-webhooks");
    }

    #[test]
    fn a_missing_secret_names_the_variable_to_set() {
        let e = parse(
            r#"
            [[sources]]
            name = "svix"
            vendor = "standard-webhooks"
            secret_env = "FIELDHOOK_TEST_SURELY_UNSET"
            "#,
        )
        .expect_err("unset variable");
        assert!(e.to_string().contains("FIELDHOOK_TEST_SURELY_UNSET"), "{e}");
    }

    #[test]
    fn a_source_without_any_secret_is_refused() {
        let e = parse("[[sources]]\nname = \"a\"\nvendor = \"hmac\"\n").expect_err("no secret");
        assert!(e.to_string().contains("secret_env"), "{e}");
    }

    #[test]
    fn an_unknown_vendor_lists_the_known_ones() {
        // SAFETY: distinct variable name.
        unsafe { std::env::set_var("FIELDHOOK_TEST_SECRET_B", "x") };
        let e = parse(
            "[[sources]]\nname = \"a\"\nvendor = \"acme\"\nsecret_env = \"FIELDHOOK_TEST_SECRET_B\"\n",
        )
        .expect_err("unknown vendor");
        assert!(e.to_string().contains("standard-webhooks"), "{e}");
    }

    #[test]
    fn source_names_are_url_safe_and_unique() {
        // SAFETY: distinct variable name.
        unsafe { std::env::set_var("FIELDHOOK_TEST_SECRET_C", "x") };
        let bad = parse(
            "[[sources]]\nname = \"A B\"\nvendor = \"hmac\"\nsecret_env = \"FIELDHOOK_TEST_SECRET_C\"\n",
        );
        assert!(bad.is_err());
        let twice = parse(
            "[[sources]]\nname = \"a\"\nvendor = \"hmac\"\nsecret_env = \"FIELDHOOK_TEST_SECRET_C\"\n\
             [[sources]]\nname = \"a\"\nvendor = \"hmac\"\nsecret_env = \"FIELDHOOK_TEST_SECRET_C\"\n",
        );
        assert!(twice.expect_err("duplicate").to_string().contains("twice"));
    }

    #[test]
    fn unknown_top_level_keys_are_errors_not_silently_ignored() {
        assert!(parse("listen_addr = \"127.0.0.1:1\"").is_err());
    }
}
