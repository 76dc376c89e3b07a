//! The daemon's configuration file (TOML): this module only composes it.
//! Each section belongs to the layer it configures and is defined there:
//! `[[sources]]`, `[ingress]` and `[dev]` to the
//! [ingress](crate::ingress),
//! `[sandbox]` to the policy, `[credentials.*]` to the credentials,
//! `[workers]`, `[delivery]`, `[[destinations]]`, `[[plugin_retries]]`,
//! `[[entities]]` and `[retention]` to the pipeline, `[admin]` to the
//! [admin API](crate::admin).
//!
//! Secrets are never required inline: each names an environment variable
//! or a file ([`fieldhook_core::secret`]). Relative paths are resolved
//! against the configuration file's directory, so a configuration can be
//! moved together with its plugins and secrets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fieldhook_pipeline::Workers;
use fieldhook_pipeline::delivery::DeliverySettings;
use fieldhook_pipeline::entities::EntityRule;
use fieldhook_pipeline::policy::{DestinationConfig, PluginRetryConfig};
use fieldhook_pipeline::retention::Retention;
use fieldhook_policy::sandbox::Sandbox;
use serde::Deserialize;

use crate::admin::settings::{AdminSettings, RawAdmin};
use crate::ingress::IngressSettings;
use crate::ingress::limits::Limits;
use crate::ingress::source::{Dev, RawSource, Source, SourceError};

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
    Credential(#[from] fieldhook_credentials::CredentialConfigError),
    /// A source is wrong.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A `[[destinations]]` entry is wrong.
    #[error(transparent)]
    Destination(#[from] fieldhook_pipeline::policy::DestinationConfigError),
    /// An `[[entities]]` entry is wrong.
    #[error(transparent)]
    Entity(#[from] fieldhook_pipeline::entities::EntityRuleError),
    /// `[admin]` is wrong.
    #[error("[admin]: {0}")]
    Admin(String),
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a key path (`sources[1] (hcp)`, `credentials.books`) or line.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
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
    pub delivery: DeliverySettings,
    /// The webhook listener's timeouts and connection cap (`[ingress]`).
    pub ingress: Limits,
    /// Development helpers.
    pub dev: Dev,
    /// Configured webhook sources.
    pub sources: Vec<Source>,
    /// Plugin sandbox: limit ceilings, outbound HTTP, key-value sizes.
    pub sandbox: Sandbox,
    /// Credentials the host adds to plugins' requests (`[credentials.NAME]`).
    pub credentials: Vec<fieldhook_credentials::CredentialSpec>,
    /// Per-destination delivery policies (`[[destinations]]`).
    pub destinations: Vec<DestinationConfig>,
    /// Per-entity debounce and ordering (`[[entities]]`).
    pub entities: Vec<EntityRule>,
    /// Per-plugin job retry policies (`[[plugin_retries]]`).
    pub plugin_retries: Vec<PluginRetryConfig>,
    /// How long events and finished work are kept (`[retention]`).
    pub retention: Retention,
    /// The admin API listener (`[admin]`), off when absent.
    pub admin: Option<AdminSettings>,
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
    delivery: DeliverySettings,
    #[serde(default)]
    ingress: Limits,
    #[serde(default)]
    dev: Dev,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    sandbox: Sandbox,
    #[serde(default)]
    credentials: std::collections::BTreeMap<String, fieldhook_credentials::RawCredential>,
    #[serde(default)]
    destinations: Vec<DestinationConfig>,
    #[serde(default)]
    entities: Vec<EntityRule>,
    #[serde(default)]
    plugin_retries: Vec<PluginRetryConfig>,
    #[serde(default)]
    retention: Retention,
    admin: Option<RawAdmin>,
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
            let source = s.build(base)?;
            if sources.iter().any(|o| o.name == source.name) {
                return Err(SourceError {
                    source_name: source.name,
                    message: "defined twice; source names must be unique".into(),
                }
                .into());
            }
            sources.push(source);
        }
        fieldhook_pipeline::policy::validate(&raw.destinations)?;
        fieldhook_pipeline::entities::validate(&raw.entities)?;
        let admin = raw
            .admin
            .map(|a| a.resolve(base))
            .transpose()
            .map_err(ConfigError::Admin)?;
        Ok(Config {
            listen: raw.listen,
            data_dir: base.join(raw.data_dir),
            plugins_dir: base.join(raw.plugins_dir),
            max_body_bytes: raw.max_body_bytes,
            dedupe_window_secs: raw.dedupe_window_secs,
            workers: raw.workers,
            delivery: raw.delivery,
            ingress: raw.ingress,
            dev: raw.dev,
            sources,
            sandbox: raw.sandbox,
            credentials: fieldhook_credentials::config::resolve(raw.credentials, base)?,
            destinations: raw.destinations,
            entities: raw.entities,
            plugin_retries: raw.plugin_retries,
            retention: raw.retention,
            admin,
        })
    }

    /// Every problem of configuration text, each with the key path it is
    /// at and how to fix it (empty: valid). Where [`parse`](Self::parse)
    /// stops at the first, this goes on through every section.
    pub fn problems(text: &str, base: &Path) -> Vec<Problem> {
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return schema_problems(text, &e),
        };
        let mut out = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, s) in raw.sources.into_iter().enumerate() {
            let name = s.name().to_owned();
            match s.build(base) {
                Ok(source) => {
                    if names.contains(&source.name) {
                        out.push(Problem {
                            key: format!("sources[{i}] ({name})"),
                            message: "defined twice; source names must be unique".into(),
                        });
                    }
                    names.push(source.name);
                }
                Err(e) => out.push(Problem {
                    key: format!("sources[{i}] ({name})"),
                    message: e.message,
                }),
            }
        }
        if let Err(e) = fieldhook_pipeline::policy::validate(&raw.destinations) {
            out.push(Problem {
                key: "destinations".into(),
                message: e.to_string(),
            });
        }
        if let Err(e) = fieldhook_pipeline::entities::validate(&raw.entities) {
            out.push(Problem {
                key: "entities".into(),
                message: e.to_string(),
            });
        }
        if let Some(admin) = raw.admin
            && let Err(e) = admin.resolve(base)
        {
            out.push(Problem {
                key: "admin".into(),
                message: e,
            });
        }
        for (name, credential) in raw.credentials {
            let one = std::iter::once((name.clone(), credential)).collect();
            if let Err(e) = fieldhook_credentials::config::resolve(one, base) {
                out.push(Problem {
                    key: format!("credentials.{name}"),
                    message: e.message,
                });
            }
        }
        out
    }

    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// What the webhook listener needs: its sources, body limit, read
    /// timeouts and connection cap, and development helpers.
    pub fn ingress(&self) -> IngressSettings {
        IngressSettings {
            sources: self.sources.clone(),
            max_body_bytes: self.max_body_bytes,
            limits: self.ingress,
            dev_sink: self.dev.sink,
        }
    }
}

/// Schema problems (syntax, unknown keys, wrong types). serde stops at the
/// first, so each top-level key, and each element of an array of tables,
/// is checked on its own to list them all.
fn schema_problems(text: &str, first: &toml::de::Error) -> Vec<Problem> {
    let line_of = |e: &toml::de::Error| {
        e.span().map_or_else(
            || "(file)".to_owned(),
            |s| {
                let end = s.start.min(text.len());
                let line = text.get(..end).unwrap_or("").matches('\n').count() + 1;
                format!("line {line}")
            },
        )
    };
    let whole = || {
        vec![Problem {
            key: line_of(first),
            message: first.message().to_owned(),
        }]
    };
    // Not even TOML: the syntax error is all there is to say.
    let Ok(table) = text.parse::<toml::Table>() else {
        return whole();
    };
    let mut out = Vec::new();
    for (key, value) in table {
        let parts: Vec<(String, toml::Value)> = match value {
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (format!("{key}[{i}]"), toml::Value::Array(vec![item])))
                .collect(),
            value => vec![(key.clone(), value)],
        };
        for (path, value) in parts {
            let mut one = toml::Table::new();
            one.insert(key.clone(), value);
            if let Err(e) = toml::Value::Table(one).try_into::<RawConfig>() {
                out.push(Problem {
                    key: path,
                    message: e.message().to_owned(),
                });
            }
        }
    }
    if out.is_empty() { whole() } else { out }
}

#[cfg(test)]
// std::env::set_var is unsafe; each test sets a variable of its own.
#[allow(unsafe_code)]
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

    fn problems(text: &str) -> Vec<String> {
        Config::problems(text, Path::new("/nonexistent"))
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn a_valid_file_has_no_problems() {
        assert!(
            problems("listen = \"127.0.0.1:9000\"\n[retention]\nevents_secs = 60\n").is_empty()
        );
    }

    #[test]
    fn every_unknown_key_is_a_problem_with_its_key_path() {
        let found = problems(
            "listen = \"127.0.0.1:9000\"\nlisten_port = 1\n[retention]\nevent_secs = 60\n\
             [[sources]]\nname = \"a\"\nvendor = \"jobber\"\nsecret_env = \"X\"\n\
             [[sources]]\nname = \"b\"\nvendr = \"jobber\"\n",
        );
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("listen_port: unknown field")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("retention: unknown field `event_secs`")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("sources[1]: missing field `vendor`")),
            "{found:#?}"
        );
    }

    #[test]
    fn problems_past_the_schema_are_all_listed_by_section() {
        let found = problems(
            "[[sources]]\nname = \"a\"\nvendor = \"no-such-vendor\"\nsecret_env = \"X\"\n\
             [admin]\nlisten = \"127.0.0.1:9001\"\n",
        );
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].starts_with("sources[0] (a): "), "{found:#?}");
        assert!(
            found[1].starts_with("admin: give `token_env` or `token_file`"),
            "{found:#?}"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let found = problems("listen = \"127.0.0.1:9000\"\n[retention\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("line 2: "), "{found:#?}");
    }
}
