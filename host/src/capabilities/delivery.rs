//! The same policy for the requests a plugin returns: before the deliverer
//! sends one, [`DeliveryGuard::authorize`] checks it against the plugin's
//! `[[http]]` grants (method, URL, resolved addresses), refuses credential
//! headers the plugin set itself and returns the credential headers to add
//! (pacing is the destination policy's, in `pipeline`).
//!
//! The deliverer's HTTP client resolves the name again when it connects;
//! the window between the two lookups is accepted here (the plugin does not
//! control when a delivery runs), while a plugin's own `wasi:http` requests
//! connect to exactly the address that was checked.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::Capabilities;
use super::outbound::{self, CallHttp, Refused};
use crate::credentials::{Applied, CallScope};
use crate::pipeline::DeliveryPayload;
use crate::plugins::PluginSet;

/// Authorizes deliveries against their plugin's grants.
#[derive(Debug, Clone)]
pub struct DeliveryGuard {
    caps: Arc<Capabilities>,
    plugins: Arc<PluginSet>,
}

/// An authorized delivery: headers to add, and what to invalidate on a 401.
#[derive(Debug)]
pub struct DeliveryAuth {
    /// Credential headers, set over the plugin's.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    credential: Option<(String, Applied)>,
    /// Holds this delivery's ServiceTrade session; closed when dropped.
    scope: Arc<CallScope>,
}

impl DeliveryGuard {
    /// A guard reading grants from the loaded `plugins`.
    pub fn new(caps: Arc<Capabilities>, plugins: Arc<PluginSet>) -> Self {
        Self { caps, plugins }
    }

    /// Checks `d` and returns what to add; the error says why the delivery
    /// is refused ([`Refused::Denied`]) or cannot go now
    /// ([`Refused::Unavailable`]: DNS, a token endpoint, a plugin reloading).
    pub async fn authorize(&self, d: &DeliveryPayload) -> Result<DeliveryAuth, Refused> {
        let plugin = self.plugins.get(&d.plugin).ok_or_else(|| {
            Refused::Unavailable(format!(
                "plugin `{}` is not loaded, so its [[http]] grants are unknown",
                d.plugin
            ))
        })?;
        let r = &d.request;
        for (name, _) in &r.headers {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes())
                && CallHttp::forbidden(&self.caps, &n)
                && n != http::header::HOST
            {
                return Err(Refused::Denied(format!(
                    "plugins may not set the `{name}` header; name a credential in the [[http]] \
                         rule and the host adds it"
                )));
            }
        }
        let uri: http::Uri = r
            .url
            .parse()
            .map_err(|e| Refused::Denied(format!("invalid URL `{}`: {e}", r.url)))?;
        let auth = outbound::authorize(
            &plugin.manifest.http,
            &r.method,
            &uri,
            self.caps.sandbox.connect_timeout(),
        )
        .await?;
        let scope = Arc::new(CallScope::new(self.caps.credentials.clone()));
        let credential = match &auth.credential {
            Some(name) => {
                let applied = self
                    .caps
                    .credentials
                    .apply(name, &scope)
                    .await
                    .map_err(|e| Refused::Unavailable(e.to_string()))?;
                Some((name.clone(), applied))
            }
            None => None,
        };
        // Deliveries are paced by the destination's `[[destinations]]`
        // policy, which defers a throttled delivery instead of holding a
        // worker; the sandbox rate limit is for a plugin's own requests.
        Ok(DeliveryAuth {
            headers: credential
                .as_ref()
                .map(|(_, a)| a.headers.clone())
                .unwrap_or_default(),
            credential,
            scope,
        })
    }

    /// The destination answered 401: discard the credential used; returns
    /// whether one retry with fresh credentials is worth it.
    pub async fn rejected(&self, auth: &DeliveryAuth) -> bool {
        match &auth.credential {
            Some((name, applied)) => {
                self.caps
                    .credentials
                    .rejected(name, applied, &auth.scope)
                    .await
            }
            None => false,
        }
    }
}
