//! The `[admin]` section: where the admin API listens and its token. Its
//! own module so the configuration reads it without the API's handlers.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};

use fieldhook_core::secret::{Secret, SecretSource};
use serde::Deserialize;

/// `[admin]` as written in the daemon config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener (keep it on loopback or a private net).
    pub listen: SocketAddr,
    /// Environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
}

/// The resolved admin settings.
#[derive(Clone)]
pub struct AdminSettings {
    /// Address of the admin listener.
    pub listen: SocketAddr,
    /// The bearer token.
    pub token: String,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl RawAdmin {
    /// Loads the token; relative paths resolve against `base`.
    pub fn resolve(self, base: &FsPath) -> Result<AdminSettings, String> {
        let source = SecretSource::from_pair("token", self.token_env, self.token_file)
            .map_err(|e| e.to_string())?
            .ok_or("give `token_env` or `token_file`: the admin API needs a bearer token")?;
        let token = source
            .load(base)
            .and_then(Secret::into_text)
            .map_err(|e| e.to_string())?;
        let token = token.expose_str().trim().to_owned();
        if token.len() < 16 {
            return Err("the admin token must be at least 16 characters".into());
        }
        Ok(AdminSettings {
            listen: self.listen,
            token,
        })
    }
}
