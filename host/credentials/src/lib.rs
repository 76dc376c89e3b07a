//! Credentials the host adds to plugins' requests; plugins never see them.
//!
//! A `[[http]]` rule in a manifest names a credential (`credential =
//! "servicetitan"`); [`Credentials::apply`] returns the headers to add to a
//! request that matched it. OAuth tokens are cached and refreshed
//! [`REFRESH_AHEAD`] before they expire, under one lock per credential so
//! concurrent users share one refresh; a rotated refresh token is written to
//! sled (and flushed) before it is used, so a crash cannot lose it.
//! ServiceTrade sessions belong to one job ([`CallScope`]) and are closed
//! when it ends.
#![deny(missing_docs)]

pub mod config;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::Digest;

pub use config::{
    CredentialConfigError, CredentialKind, CredentialSpec, RawCredential, SecretString,
};

use fieldhook_core::time::now_ms;
use fieldhook_store::StoreError;
pub use fieldhook_store::tokens::TokenTree;

/// Tokens are refreshed this long before they expire.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// Lifetime assumed when a token endpoint does not say.
const DEFAULT_EXPIRES_IN: u64 = 3600;
/// Timeout of token and session requests.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// A credential that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential `{name}`: {message}")]
pub struct CredentialError {
    /// The credential's name.
    pub name: String,
    /// What failed and how to fix it.
    pub message: String,
}

/// Headers to add to one request, and what identifies them for a 401.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Headers to set (replacing any of the same name).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The token used, so a 401 only discards that one.
    token: Option<String>,
}

#[derive(Debug, Clone)]
struct Token {
    access: String,
    expires_at_ms: u64,
}

impl Token {
    fn fresh(&self) -> bool {
        now_ms() + (REFRESH_AHEAD.as_millis() as u64) < self.expires_at_ms
    }
}

struct Entry {
    spec: CredentialSpec,
    /// One refresh at a time; waiters then see the fresh token.
    token: tokio::sync::Mutex<Option<Token>>,
}

/// Persisted refresh-token state (sled tree `credentials`).
#[derive(Serialize, Deserialize)]
struct Stored {
    /// Fingerprint of the refresh token the operator configured; a new one
    /// in the configuration wins over the stored rotation.
    seed: String,
    refresh_token: String,
    access_token: Option<String>,
    expires_at_ms: u64,
}

/// Every configured credential.
pub struct Credentials {
    entries: HashMap<String, Arc<Entry>>,
    forbidden: Vec<String>,
    client: reqwest::Client,
    tree: Option<Tokens>,
}

/// Refresh-token records in the store's `credentials` tree, as JSON.
#[derive(Clone)]
struct Tokens(TokenTree);

impl Tokens {
    fn get(&self, name: &str) -> Option<Stored> {
        let bytes = self.0.get(name).ok().flatten()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes without waiting for the disk (for what a crash may lose).
    fn put(&self, name: &str, record: &Stored) -> Result<(), StoreError> {
        self.0.put(name, &encode_stored(record))
    }

    /// Writes and returns once the record is on disk.
    async fn put_durable(&self, name: &str, record: &Stored) -> Result<(), StoreError> {
        self.0.put_durable(name, &encode_stored(record)).await
    }
}

fn encode_stored(record: &Stored) -> Vec<u8> {
    // Plain strings and numbers: serialising into a Vec cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("names", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Credentials {
    fn default() -> Self {
        Self::new(Vec::new(), None)
    }
}

impl Credentials {
    /// Credentials from the configuration; `tree` keeps rotated tokens.
    pub fn new(specs: Vec<CredentialSpec>, tree: Option<TokenTree>) -> Self {
        let mut forbidden: Vec<String> = vec![
            "authorization".into(),
            "proxy-authorization".into(),
            "cookie".into(),
        ];
        for s in &specs {
            for h in s.header_names() {
                if !forbidden.contains(&h) {
                    forbidden.push(h);
                }
            }
        }
        let client = reqwest::Client::builder()
            .timeout(AUTH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fieldhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            entries: specs
                .into_iter()
                .map(|spec| {
                    (
                        spec.name.clone(),
                        Arc::new(Entry {
                            spec,
                            token: tokio::sync::Mutex::new(None),
                        }),
                    )
                })
                .collect(),
            forbidden,
            client,
            tree: tree.map(Tokens),
        }
    }

    /// Whether a credential of this name is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The credential configured as `name`.
    pub fn spec(&self, name: &str) -> Option<&CredentialSpec> {
        self.entries.get(name).map(|e| &e.spec)
    }

    /// Header names (lower case) a plugin may never set: `Authorization`,
    /// `Proxy-Authorization`, `Cookie` and every configured credential's.
    pub fn forbidden_headers(&self) -> &[String] {
        &self.forbidden
    }

    /// The headers for a request covered by credential `name`.
    pub async fn apply(&self, name: &str, scope: &CallScope) -> Result<Applied, CredentialError> {
        let entry = self.entry(name)?;
        let mut headers = Vec::new();
        for (h, v) in &entry.spec.headers {
            headers.push(header(name, h, v.expose_str())?);
        }
        let token = match &entry.spec.kind {
            CredentialKind::ApiKey { header: h, value } => {
                headers.push(header(name, h, value.expose_str())?);
                None
            }
            CredentialKind::ServiceTradeSession { .. } => {
                let token = scope.session(self, &entry).await?;
                headers.push(header(name, "cookie", &format!("PHPSESSID={token}"))?);
                Some(token)
            }
            CredentialKind::ClientCredentials { .. } | CredentialKind::RefreshToken { .. } => {
                let token = self.bearer(&entry).await?;
                headers.push(header(name, "authorization", &format!("Bearer {token}"))?);
                Some(token)
            }
        };
        Ok(Applied { headers, token })
    }

    /// The destination answered 401 to `applied`: forget that token (unless
    /// someone already replaced it) so the next [`Credentials::apply`] gets
    /// a new one. Returns whether a retry with new credentials makes sense.
    pub async fn rejected(&self, name: &str, applied: &Applied, scope: &CallScope) -> bool {
        let Ok(entry) = self.entry(name) else {
            return false;
        };
        let Some(used) = &applied.token else {
            return false;
        };
        match entry.spec.kind {
            CredentialKind::ApiKey { .. } => false,
            CredentialKind::ServiceTradeSession { .. } => {
                scope.forget(name, used);
                true
            }
            _ => {
                let mut guard = entry.token.lock().await;
                if guard.as_ref().is_some_and(|t| &t.access == used) {
                    *guard = None;
                    if let Some(tree) = &self.tree {
                        // Keep the refresh token, drop the rejected access token.
                        if let Some(mut s) = tree.get(name) {
                            s.access_token = None;
                            let _ = tree.put(name, &s);
                        }
                    }
                }
                true
            }
        }
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>, CredentialError> {
        self.entries.get(name).cloned().ok_or_else(|| CredentialError {
            name: name.into(),
            message: format!(
                "no such credential in the daemon configuration; add a `[credentials.{name}]` section"
            ),
        })
    }

    /// A valid OAuth access token, refreshed when within [`REFRESH_AHEAD`]
    /// of expiry. Concurrent callers wait on the same refresh.
    async fn bearer(&self, entry: &Entry) -> Result<String, CredentialError> {
        let mut guard = entry.token.lock().await;
        if let Some(t) = guard.as_ref().filter(|t| t.fresh()) {
            return Ok(t.access.clone());
        }
        let token = match &entry.spec.kind {
            CredentialKind::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.expose_str()),
                    ("client_secret", client_secret.expose_str()),
                ];
                if let Some(s) = scope {
                    form.push(("scope", s));
                }
                self.token_request(&entry.spec.name, token_url, &form)
                    .await?
                    .0
            }
            CredentialKind::RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
            } => {
                self.refresh(
                    &entry.spec.name,
                    token_url,
                    client_id,
                    client_secret,
                    refresh_token,
                )
                .await?
            }
            _ => unreachable_kind(&entry.spec.name)?,
        };
        let access = token.access.clone();
        *guard = Some(token);
        Ok(access)
    }

    async fn refresh(
        &self,
        name: &str,
        token_url: &str,
        client_id: &SecretString,
        client_secret: &SecretString,
        seed: &SecretString,
    ) -> Result<Token, CredentialError> {
        let fingerprint = hex::encode(&sha2::Sha256::digest(seed.expose_str().as_bytes())[..8]);
        let stored = self
            .tree
            .as_ref()
            .and_then(|t| t.get(name))
            .filter(|s| s.seed == fingerprint);
        if let Some(s) = &stored
            && let Some(access) = &s.access_token
        {
            let t = Token {
                access: access.clone(),
                expires_at_ms: s.expires_at_ms,
            };
            if t.fresh() {
                return Ok(t);
            }
        }
        let current = stored
            .map(|s| s.refresh_token)
            .unwrap_or_else(|| seed.expose_str().to_owned());
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", client_id.expose_str()),
            ("client_secret", client_secret.expose_str()),
            ("refresh_token", current.as_str()),
        ];
        let (token, rotated) = self.token_request(name, token_url, &form).await?;
        if let Some(tree) = &self.tree {
            let record = Stored {
                seed: fingerprint,
                refresh_token: rotated.unwrap_or(current),
                access_token: Some(token.access.clone()),
                expires_at_ms: token.expires_at_ms,
            };
            let persisted = tree.put_durable(name, &record).await;
            // The provider has already invalidated the old refresh token;
            // losing the new one would lock the integration out.
            persisted.map_err(|e| CredentialError {
                name: name.into(),
                message: format!("cannot persist the rotated refresh token: {e}"),
            })?;
        }
        tracing::info!(credential = name, "OAuth token refreshed");
        Ok(token)
    }

    /// POSTs a token request; returns the token and a rotated refresh token.
    async fn token_request(
        &self,
        name: &str,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(Token, Option<String>), CredentialError> {
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: Option<u64>,
            refresh_token: Option<String>,
        }
        let err = |message: String| CredentialError {
            name: name.into(),
            message,
        };
        let resp = self
            .client
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| err(format!("token endpoint {url} unreachable: {e}")))?;
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        if !status.is_success() {
            let snippet = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(err(format!(
                "token endpoint {url} answered HTTP {}: {snippet} (check the client id, secret and refresh token)",
                status.as_u16()
            )));
        }
        let a: Answer = serde_json::from_slice(&body).map_err(|e| {
            err(format!(
                "token endpoint {url} answered without an access_token: {e}"
            ))
        })?;
        let expires_in = a.expires_in.unwrap_or(DEFAULT_EXPIRES_IN);
        Ok((
            Token {
                access: a.access_token,
                // `expires_in` comes from the network: never let it overflow.
                expires_at_ms: now_ms().saturating_add(expires_in.saturating_mul(1000)),
            },
            a.refresh_token,
        ))
    }

    async fn open_session(&self, entry: &Entry) -> Result<String, CredentialError> {
        let CredentialKind::ServiceTradeSession {
            auth_url,
            username,
            password,
        } = &entry.spec.kind
        else {
            return unreachable_kind(&entry.spec.name);
        };
        let name = &entry.spec.name;
        let err = |message: String| CredentialError {
            name: name.clone(),
            message,
        };
        let resp = self
            .client
            .post(auth_url)
            .json(
                &serde_json::json!({"username": username.expose_str(), "password": password.expose_str()}),
            )
            .send()
            .await
            .map_err(|e| err(format!("{auth_url} unreachable: {e}")))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(err(format!(
                "opening a session at {auth_url} answered HTTP {} (check username and password)",
                status.as_u16()
            )));
        }
        body["data"]["authToken"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| err(format!("{auth_url} answered without data.authToken")))
    }

    async fn close_session(&self, name: &str, token: &str) {
        let Ok(entry) = self.entry(name) else { return };
        let CredentialKind::ServiceTradeSession { auth_url, .. } = &entry.spec.kind else {
            return;
        };
        match self
            .client
            .delete(auth_url)
            .header("cookie", format!("PHPSESSID={token}"))
            .send()
            .await
        {
            Ok(r) => tracing::debug!(
                credential = name,
                status = r.status().as_u16(),
                "ServiceTrade session closed"
            ),
            Err(e) => {
                tracing::warn!(credential = name, error = %e, "cannot close the ServiceTrade session")
            }
        }
    }
}

fn unreachable_kind<T>(name: &str) -> Result<T, CredentialError> {
    Err(CredentialError {
        name: name.into(),
        message: "internal error: wrong credential kind".into(),
    })
}

fn header(name: &str, h: &str, v: &str) -> Result<(HeaderName, HeaderValue), CredentialError> {
    let err = |what: &str| CredentialError {
        name: name.into(),
        message: format!("{what} of header `{h}` is not valid in HTTP"),
    };
    let mut value = HeaderValue::from_str(v).map_err(|_| err("the value"))?;
    value.set_sensitive(true);
    Ok((
        HeaderName::from_bytes(h.as_bytes()).map_err(|_| err("the name"))?,
        value,
    ))
}

/// Credentials held for one job: ServiceTrade sessions opened during it are
/// closed (`DELETE`) when it is dropped.
pub struct CallScope {
    credentials: Arc<Credentials>,
    sessions: Mutex<HashMap<String, String>>,
    /// Serialises session opening so one job opens one session.
    opening: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for CallScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallScope").finish_non_exhaustive()
    }
}

impl CallScope {
    /// A scope for one job.
    pub fn new(credentials: Arc<Credentials>) -> Self {
        Self {
            credentials,
            sessions: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// The credentials this scope draws on.
    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.credentials
    }

    async fn session(&self, creds: &Credentials, entry: &Entry) -> Result<String, CredentialError> {
        let _one = self.opening.lock().await;
        if let Some(t) = self.lock().get(&entry.spec.name) {
            return Ok(t.clone());
        }
        let token = creds.open_session(entry).await?;
        self.lock().insert(entry.spec.name.clone(), token.clone());
        Ok(token)
    }

    fn forget(&self, name: &str, used: &str) {
        let mut s = self.lock();
        if s.get(name).is_some_and(|t| t == used) {
            s.remove(name);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the sessions opened in this scope now.
    pub async fn close(&self) {
        let sessions: Vec<(String, String)> = self.lock().drain().collect();
        for (name, token) in sessions {
            self.credentials.close_session(&name, &token).await;
        }
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        let sessions: Vec<(String, String)> = self.lock().drain().collect();
        if sessions.is_empty() {
            return;
        }
        // The account keeps a limited number of sessions: close each one as
        // soon as its job ends, off the job's path.
        let creds = self.credentials.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    for (name, token) in sessions {
                        creds.close_session(&name, &token).await;
                    }
                });
            }
            Err(_) => tracing::warn!("ServiceTrade sessions left open: no runtime to close them"),
        }
    }
}
