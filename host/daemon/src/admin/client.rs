//! A client for the admin API, used by `fieldhook events|dlq|replay|stats`.
//!
//! It reads only the `[admin]` section of the daemon's config (the address
//! and the token), so it needs none of the sources' secrets.

use std::path::Path;

use serde_json::Value;

use super::RawAdmin;

/// Admin client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The config has no usable `[admin]` section.
    #[error("{0}")]
    Config(String),
    /// The daemon could not be reached.
    #[error(
        "cannot reach the admin API at {url}: {source} (is the daemon running with [admin] listen set?)"
    )]
    Connect {
        /// URL tried.
        url: String,
        /// Underlying error.
        source: reqwest::Error,
    },
    /// The daemon answered with an error.
    #[error("admin API answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
}

/// A connection to one daemon's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for `base` (`http://127.0.0.1:9091`) with `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: reqwest::Client::new(),
        }
    }

    /// A client from the `[admin]` section of a daemon config file.
    pub fn from_config(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClientError::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            ClientError::Config(format!("invalid config file {}: {e}", path.display()))
        })?;
        let admin = table.get("admin").cloned().ok_or_else(|| {
            ClientError::Config(format!(
                "{} has no [admin] section: add `[admin] listen = \"127.0.0.1:9091\"` and `token_env`/`token_file`",
                path.display()
            ))
        })?;
        let raw: RawAdmin = admin
            .try_into()
            .map_err(|e| ClientError::Config(format!("[admin] in {}: {e}", path.display())))?;
        let settings = raw
            .resolve(path.parent().unwrap_or(Path::new(".")))
            .map_err(|m| ClientError::Config(format!("[admin] in {}: {m}", path.display())))?;
        let mut addr = settings.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Ok(Self::new(format!("http://{addr}"), settings.token))
    }

    /// `GET path` (with query) as JSON.
    pub async fn get(&self, path_and_query: &str) -> Result<Value, ClientError> {
        let req = self.http.get(format!("{}{path_and_query}", self.base));
        self.send(req).await
    }

    /// `GET path` as text (`/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Connect { url, source })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: text,
            });
        }
        Ok(text)
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let req = req.bearer_auth(&self.token);
        let url = self.base.clone();
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Connect { url, source })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: body["error"].as_str().unwrap_or("(no message)").to_owned(),
            });
        }
        Ok(body)
    }
}
