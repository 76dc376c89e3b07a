//! `[credentials.NAME]` in the daemon configuration: what each credential
//! is, with its secrets loaded from the environment or files.
//!
//! Every credential says where it may be sent: `hosts` (exact names, IPs or
//! `*.example.com` for sub-domains) and optionally `paths` (prefixes). A
//! plugin whose `[[http]]` rule names a credential for anything else is
//! refused when it loads, so a manifest cannot send a secret to a host of
//! its choosing.
//!
//! ```toml
//! [credentials.hcp]                    # Housecall Pro
//! hosts = ["api.housecallpro.com"]
//! kind = "api-key"
//! key_env = "HCP_API_KEY"              # or key_file = "secrets/hcp"
//! header = "Authorization"             # default
//! template = "Token {key}"             # default "{key}"
//!
//! [credentials.servicetitan]
//! hosts = ["api.servicetitan.io"]
//! paths = ["/jpm/v2/", "/crm/v2/"]     # optional
//! kind = "oauth-client-credentials"
//! token_url = "https://auth.servicetitan.io/connect/token"
//! client_id = "cid.abc"                # or client_id_env
//! client_secret_env = "ST_CLIENT_SECRET"
//! headers = { "ST-App-Key" = { env = "ST_APP_KEY" } }
//!
//! [credentials.jobber]
//! hosts = ["api.getjobber.com"]
//! kind = "oauth-refresh-token"
//! token_url = "https://api.getjobber.com/api/oauth/token"
//! client_id_env = "JOBBER_CLIENT_ID"
//! client_secret_env = "JOBBER_CLIENT_SECRET"
//! refresh_token_env = "JOBBER_REFRESH_TOKEN"   # first token; rotations persist in sled
//!
//! [credentials.servicetrade]
//! hosts = ["api.servicetrade.com"]
//! kind = "servicetrade-session"
//! auth_url = "https://api.servicetrade.com/api/auth"   # default
//! username = "integration@example.com"
//! password_env = "SERVICETRADE_PASSWORD"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fieldhook_core::secret::{Secret, SecretSource};
use serde::Deserialize;

/// A secret that goes into a header or a token request: text, never printed.
pub type SecretString = Secret<String>;

/// One configured credential, secrets resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSpec {
    /// Name rules refer to (`credential = "NAME"`).
    pub name: String,
    /// What kind, with its settings.
    pub kind: CredentialKind,
    /// Extra headers added with the authentication (ServiceTitan `ST-App-Key`).
    pub headers: Vec<(String, SecretString)>,
    /// Where it may be sent: lower-case host names, IPs or `*.suffix`.
    pub hosts: Vec<String>,
    /// Path prefixes it may be sent to; empty: any path on those hosts.
    pub paths: Vec<String>,
}

/// The kinds of credentials the host can add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// A static key rendered into one header.
    ApiKey {
        /// Header name.
        header: String,
        /// The rendered value (`Token abc`).
        value: SecretString,
    },
    /// OAuth 2.0 client credentials grant.
    ClientCredentials {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: SecretString,
        /// Client secret.
        client_secret: SecretString,
        /// Scope, when the provider wants one.
        scope: Option<String>,
    },
    /// OAuth 2.0 refresh token grant; rotated tokens persist in sled.
    RefreshToken {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: SecretString,
        /// Client secret.
        client_secret: SecretString,
        /// The refresh token the operator configured (used until a rotated
        /// one is stored, or again when the operator changes it).
        refresh_token: SecretString,
    },
    /// ServiceTrade session: `POST auth_url` opens one, `DELETE auth_url`
    /// closes it when the job is done.
    ServiceTradeSession {
        /// `https://api.servicetrade.com/api/auth` unless configured.
        auth_url: String,
        /// Username.
        username: SecretString,
        /// Password.
        password: SecretString,
    },
}

impl CredentialSpec {
    /// Header names this credential sets; plugins may never set them.
    pub fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        names.push(match &self.kind {
            CredentialKind::ApiKey { header, .. } => header.to_ascii_lowercase(),
            CredentialKind::ServiceTradeSession { .. } => "cookie".into(),
            _ => "authorization".into(),
        });
        names
    }
}

/// A credential that cannot be used, naming the key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential `{name}`: {message}")]
pub struct CredentialConfigError {
    /// The credential's name.
    pub name: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A value given inline (not for secrets), from an environment variable or
/// from a file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSource {
    env: Option<String>,
    file: Option<PathBuf>,
    value: Option<String>,
}

/// `[credentials.NAME]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    kind: String,
    hosts: Option<Vec<String>>,
    #[serde(default)]
    paths: Vec<String>,
    key_env: Option<String>,
    key_file: Option<PathBuf>,
    header: Option<String>,
    template: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_id_env: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    scope: Option<String>,
    refresh_token_env: Option<String>,
    refresh_token_file: Option<PathBuf>,
    auth_url: Option<String>,
    username: Option<String>,
    username_env: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    headers: BTreeMap<String, ValueSource>,
}

const KINDS: &str = "api-key, oauth-client-credentials, oauth-refresh-token, servicetrade-session";

/// Resolves every `[credentials.*]` entry; `base` anchors relative files.
pub fn resolve(
    raw: BTreeMap<String, RawCredential>,
    base: &Path,
) -> Result<Vec<CredentialSpec>, CredentialConfigError> {
    raw.into_iter()
        .map(|(name, r)| resolve_one(name, r, base))
        .collect()
}

fn resolve_one(
    name: String,
    r: RawCredential,
    base: &Path,
) -> Result<CredentialSpec, CredentialConfigError> {
    let err = |message: String| CredentialConfigError {
        name: name.clone(),
        message,
    };
    let secret = |what: &str, env: &Option<String>, file: &Option<PathBuf>| {
        load(env.as_deref(), file.as_deref(), None, base)
            .map_err(|m| err(format!("{what}: {m}")))?
            .ok_or_else(|| {
                err(format!(
                    "set `{what}_env = \"VAR\"` or `{what}_file = \"path\"`"
                ))
            })
    };
    let plain = |what: &str, inline: &Option<String>, env: &Option<String>| {
        load(env.as_deref(), None, inline.as_deref(), base)
            .map_err(|m| err(format!("{what}: {m}")))?
            .ok_or_else(|| err(format!("set `{what} = \"...\"` or `{what}_env = \"VAR\"`")))
    };
    let url = |what: &str, v: &Option<String>| -> Result<String, CredentialConfigError> {
        let u = v
            .clone()
            .ok_or_else(|| err(format!("`{what}` is required")))?;
        match u.parse::<http::Uri>() {
            Ok(p) if matches!(p.scheme_str(), Some("http" | "https")) && p.host().is_some() => {
                Ok(u)
            }
            _ => Err(err(format!(
                "`{what}` = `{u}` is not an absolute http(s) URL"
            ))),
        }
    };
    let kind = match r.kind.as_str() {
        "api-key" => {
            let key = secret("key", &r.key_env, &r.key_file)?;
            let template = r.template.clone().unwrap_or_else(|| "{key}".into());
            if !template.contains("{key}") {
                return Err(err(format!("template `{template}` must contain `{{key}}`")));
            }
            CredentialKind::ApiKey {
                header: r.header.clone().unwrap_or_else(|| "Authorization".into()),
                value: Secret::new(template.replace("{key}", key.expose_str())),
            }
        }
        "oauth-client-credentials" => CredentialKind::ClientCredentials {
            token_url: url("token_url", &r.token_url)?,
            client_id: plain("client_id", &r.client_id, &r.client_id_env)?,
            client_secret: secret("client_secret", &r.client_secret_env, &r.client_secret_file)?,
            scope: r.scope.clone(),
        },
        "oauth-refresh-token" => CredentialKind::RefreshToken {
            token_url: url("token_url", &r.token_url)?,
            client_id: plain("client_id", &r.client_id, &r.client_id_env)?,
            client_secret: secret("client_secret", &r.client_secret_env, &r.client_secret_file)?,
            refresh_token: secret("refresh_token", &r.refresh_token_env, &r.refresh_token_file)?,
        },
        "servicetrade-session" => CredentialKind::ServiceTradeSession {
            auth_url: url(
                "auth_url",
                &Some(
                    r.auth_url
                        .clone()
                        .unwrap_or_else(|| "https://api.servicetrade.com/api/auth".into()),
                ),
            )?,
            username: plain("username", &r.username, &r.username_env)?,
            password: secret("password", &r.password_env, &r.password_file)?,
        },
        other => return Err(err(format!("unknown kind `{other}`; one of {KINDS}"))),
    };
    let mut headers = Vec::new();
    for (h, v) in &r.headers {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(err(format!("headers: `{h}` is not a valid header name")));
        }
        let value = load(
            v.env.as_deref(),
            v.file.as_deref(),
            v.value.as_deref(),
            base,
        )
        .map_err(|m| err(format!("headers.{h}: {m}")))?
        .ok_or_else(|| err(format!("headers.{h}: give `env`, `file` or `value`")))?;
        headers.push((h.clone(), value));
    }
    let hosts = r.hosts.clone().ok_or_else(|| {
        err(
            "set `hosts = [\"api.example.com\"]`: the hosts this credential may be sent to \
             (`*.example.com` covers sub-domains); plugins may use it for nothing else"
                .into(),
        )
    })?;
    if hosts.is_empty() {
        return Err(err(
            "`hosts` is empty; name the hosts this credential may be sent to".into(),
        ));
    }
    let hosts = hosts
        .into_iter()
        .map(|h| {
            let h = h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            let bare = h.strip_prefix("*.").unwrap_or(&h);
            if bare.is_empty() || bare.contains(['*', '/', '@']) {
                Err(err(format!(
                    "hosts: `{h}` must be a name (`api.example.com`), an IP, or `*.example.com`"
                )))
            } else {
                Ok(h)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    for p in &r.paths {
        if !p.starts_with('/') {
            return Err(err(format!("paths: `{p}` must start with `/`")));
        }
    }
    Ok(CredentialSpec {
        name,
        kind,
        headers,
        hosts,
        paths: r.paths.clone(),
    })
}

fn load(
    env: Option<&str>,
    file: Option<&Path>,
    inline: Option<&str>,
    base: &Path,
) -> Result<Option<SecretString>, String> {
    let source = match (env, file, inline) {
        (None, None, Some(v)) => return Ok(Some(Secret::new(v.into()))),
        (None, None, None) => return Ok(None),
        (Some(var), None, None) => SecretSource::Env(var.into()),
        (None, Some(path), None) => SecretSource::File(path.into()),
        _ => return Err("give only one of the value, its `_env` variable or its `_file`".into()),
    };
    let secret = source.load(base).map_err(|e| e.to_string())?;
    secret.into_text().map(Some).map_err(|e| e.to_string())
}

#[cfg(test)]
// std::env::set_var is unsafe; each test sets a variable of its own.
#[allow(unsafe_code)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<CredentialSpec>, CredentialConfigError> {
        let raw: BTreeMap<String, RawCredential> = toml::from_str(text).expect("toml");
        resolve(raw, Path::new("/nonexistent"))
    }

    #[test]
    fn an_api_key_is_rendered_into_its_header_template() {
        // SAFETY: distinct variable name.
        unsafe { std::env::set_var("FH_CRED_TEST_HCP", "k123") };
        let c = parse("[hcp]\nhosts = [\"api.housecallpro.com\"]\nkind = \"api-key\"\nkey_env = \"FH_CRED_TEST_HCP\"\ntemplate = \"Token {key}\"\n")
            .unwrap();
        assert_eq!(
            c[0].kind,
            CredentialKind::ApiKey {
                header: "Authorization".into(),
                value: Secret::new("Token k123".into())
            }
        );
        assert_eq!(c[0].header_names(), vec!["authorization"]);
    }

    #[test]
    fn secrets_are_never_inline_and_missing_ones_name_the_key() {
        let e = parse("[st]\nkind = \"oauth-client-credentials\"\ntoken_url = \"https://a/t\"\nclient_id = \"x\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("client_secret_env"), "{e}");
        let e = parse("[x]\nkind = \"nope\"\n").unwrap_err();
        assert!(e.to_string().contains("servicetrade-session"), "{e}");
    }

    #[test]
    fn a_credential_must_say_where_it_may_be_sent() {
        // SAFETY: distinct variable name.
        unsafe { std::env::set_var("FH_CRED_TEST_NOWHERE", "k") };
        let e =
            parse("[books]\nkind = \"api-key\"\nkey_env = \"FH_CRED_TEST_NOWHERE\"\n").unwrap_err();
        assert!(e.to_string().contains("hosts = ["), "{e}");
        let c = parse(
            "[books]\nhosts = [\"API.Books.com\", \"*.books.io\"]\npaths = [\"/api/\"]\nkind = \"api-key\"\nkey_env = \"FH_CRED_TEST_NOWHERE\"\n",
        )
        .unwrap();
        assert_eq!(c[0].hosts, ["api.books.com", "*.books.io"]);
        assert_eq!(c[0].paths, ["/api/"]);
        let e = parse(
            "[books]\nhosts = [\"a.com\"]\npaths = [\"api\"]\nkind = \"api-key\"\nkey_env = \"FH_CRED_TEST_NOWHERE\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("paths"), "{e}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        // SAFETY: distinct variable name.
        unsafe { std::env::set_var("FH_CRED_TEST_SM8", "very-secret") };
        let c = parse(
            "[sm8]\nhosts = [\"api.servicem8.com\"]\nkind = \"api-key\"\nheader = \"X-API-Key\"\nkey_env = \"FH_CRED_TEST_SM8\"\n",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
