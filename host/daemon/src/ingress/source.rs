//! Webhook sources: the `[[sources]]` blocks, each a vendor verifier with
//! its secrets, and the listener's `[dev]` helpers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fieldhook_core::secret::SecretSource;
use fieldhook_vendors::{self as vendors, Secret, Vendor};
use serde::Deserialize;

/// A source that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("source `{source_name}`: {message}")]
pub struct SourceError {
    /// The source's name.
    pub source_name: String,
    /// What is wrong and how to fix it.
    pub message: String,
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

/// A `[[sources]]` block as written.
#[derive(Deserialize)]
pub struct RawSource {
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

impl RawSource {
    /// The name the source is configured under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Loads the source's secrets (relative files resolve against `base`)
    /// and builds its vendor's verifier.
    pub fn build(self, base: &Path) -> Result<Source, SourceError> {
        let raw = self;
        let err = |message: String| SourceError {
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
        // The vendor before its secrets: a misspelt vendor is the problem
        // to report, whatever its secret is.
        if !vendors::NAMES.contains(&raw.vendor.as_str()) {
            return Err(err(vendors::VendorConfigError::UnknownVendor(
                raw.vendor.clone(),
            )
            .to_string()));
        }
        let load = |env: &Option<String>, file: &Option<PathBuf>, what: &str| {
            let source = SecretSource::from_pair(what, env.clone(), file.clone())
                .map_err(|e| e.to_string())?;
            source
                .map(|s| s.load(base))
                .transpose()
                .map_err(|e| e.to_string())
        };
        let current = load(&raw.secret_env, &raw.secret_file, "secret")
            .map_err(&err)?
            .ok_or_else(|| {
                err("no secret: set `secret_env = \"VAR\"` or `secret_file = \"path\"`".into())
            })?;
        let mut secrets = vec![current];
        if let Some(previous) = load(
            &raw.previous_secret_env,
            &raw.previous_secret_file,
            "previous_secret",
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
}

/// Each source's vendor, for the events schedules emit into it.
pub fn vendors_by_source(sources: &[Source]) -> std::collections::BTreeMap<String, String> {
    sources
        .iter()
        .map(|s| (s.name.clone(), s.vendor.name().to_owned()))
        .collect()
}
