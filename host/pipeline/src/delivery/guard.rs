//! The outbound policy for the requests a plugin returns: before the
//! deliverer sends one, [`DeliveryGuard::authorize`] checks it against the
//! plugin's `[[http]]` grants (method, URL, resolved addresses) with
//! [`outbound::authorize`], refuses credential headers the plugin set itself
//! and returns the credential headers to add (pacing is the destination
//! policy's, [`crate::policy`]).
//!
//! The deliverer's HTTP client does not look the name up again: its
//! resolver is [`CheckedAddrs`], which answers with the addresses the check
//! approved, so a DNS answer that changes between check and connect (DNS
//! rebinding) cannot steer a delivery to an address no grant allows. A
//! plugin's own `wasi:http` requests likewise connect to the checked address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};

use fieldhook_capabilities::InForce;
use fieldhook_capabilities::outbound::{self, CallHttp, Refused};
use fieldhook_core::task::DeliveryPayload;
use fieldhook_credentials::{Applied, CallScope};
use fieldhook_runtime::directory::PluginSet;

/// Authorizes deliveries against their plugin's grants.
#[derive(Debug, Clone)]
pub struct DeliveryGuard {
    caps: InForce,
    plugins: Arc<PluginSet>,
    checked: CheckedAddrs,
}

/// Name resolution for the deliverer's HTTP client: the addresses
/// [`DeliveryGuard::authorize`] last checked for each host, and nothing
/// else. A host with no fresh check fails to resolve, and the delivery is
/// retried (and checked) again.
#[derive(Debug, Clone, Default)]
pub struct CheckedAddrs {
    by_host: Arc<Mutex<HashMap<String, Checked>>>,
}

#[derive(Debug)]
struct Checked {
    addrs: Vec<SocketAddr>,
    at: Instant,
}

/// How long a check stands in for a lookup. A delivery connects right after
/// its check; pooled connections need no lookup at all.
const CHECK_STANDS_FOR: Duration = Duration::from_secs(60);

/// Hosts remembered before stale entries are swept.
const SWEEP_ABOVE: usize = 1024;

impl CheckedAddrs {
    /// Records that `addrs` were checked for `host`.
    pub fn remember(&self, host: &str, addrs: &[SocketAddr]) {
        let mut map = self.by_host.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_ABOVE {
            map.retain(|_, c| c.at.elapsed() < CHECK_STANDS_FOR);
        }
        map.insert(
            host.to_ascii_lowercase(),
            Checked {
                addrs: addrs.to_vec(),
                at: Instant::now(),
            },
        );
    }

    /// The addresses checked for `host`, if the check is recent.
    pub fn lookup(&self, host: &str) -> Option<Vec<SocketAddr>> {
        let map = self.by_host.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&host.to_ascii_lowercase())
            .filter(|c| c.at.elapsed() < CHECK_STANDS_FOR)
            .map(|c| c.addrs.clone())
    }
}

impl reqwest::dns::Resolve for CheckedAddrs {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = self.lookup(name.as_str());
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match found {
                Some(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                None => Err(format!(
                    "{host} was not checked against a grant just before this delivery; it is retried"
                )
                .into()),
            }
        })
    }
}

/// An authorized delivery: the URL to send (exactly the one checked),
/// headers to add, and what to invalidate on a 401.
#[derive(Debug)]
pub struct DeliveryAuth {
    /// The checked URL, path in canonical form.
    pub url: String,
    /// Credential headers, set over the plugin's.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    credential: Option<(String, Applied)>,
    /// Holds this delivery's ServiceTrade session; closed when dropped.
    scope: Arc<CallScope>,
}

impl DeliveryGuard {
    /// A guard reading grants from the loaded `plugins`.
    pub fn new(caps: impl Into<InForce>, plugins: Arc<PluginSet>) -> Self {
        Self {
            caps: caps.into(),
            plugins,
            checked: CheckedAddrs::default(),
        }
    }

    /// The resolver the deliverer's client must use: the addresses this
    /// guard checked.
    pub fn checked_addrs(&self) -> CheckedAddrs {
        self.checked.clone()
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
        // One configuration for the whole check, even across a reload.
        let caps = self.caps.get();
        let r = &d.request;
        for (name, _) in &r.headers {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes())
                && (CallHttp::forbidden(&caps, &n) || n == http::header::HOST)
            {
                return Err(Refused::Denied(if n == http::header::HOST {
                    // Another virtual host behind a granted address is
                    // another destination.
                    "plugins may not set the `Host` header; the host sends the URL's".to_owned()
                } else {
                    format!(
                        "plugins may not set the `{name}` header; name a credential in the [[http]] \
                         rule and the host adds it"
                    )
                }));
            }
        }
        let uri: http::Uri = r.url.parse().map_err(|e| {
            Refused::Denied(format!(
                "invalid URL `{}`: {e}",
                fieldhook_core::text::escape_controls(&r.url)
            ))
        })?;
        let auth = outbound::authorize(
            &plugin.manifest.http,
            &caps.credentials,
            &r.method,
            &uri,
            caps.sandbox.connect_timeout(),
        )
        .await?;
        self.checked.remember(&auth.target.host, &auth.addrs);
        let scope = Arc::new(CallScope::new(caps.credentials.clone()));
        let credential = match &auth.credential {
            Some(name) => {
                let applied = caps
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
            url: auth.target.url(uri.query()),
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
                    .get()
                    .credentials
                    .rejected(name, applied, &auth.scope)
                    .await
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_host_resolves_to_the_addresses_checked_for_it_and_nothing_else() {
        let checked = CheckedAddrs::default();
        checked.remember("API.Example.com", &[addr("93.184.216.34:443")]);
        let name = "api.example.com".parse().unwrap();
        let addrs: Vec<_> = checked.resolve(name).await.unwrap().collect();
        assert_eq!(addrs, [addr("93.184.216.34:443")]);

        let unchecked = "other.example.com".parse().unwrap();
        let err = checked.resolve(unchecked).await.err().expect("no lookup");
        assert!(err.to_string().contains("other.example.com"), "{err}");
    }

    #[test]
    fn a_newer_check_replaces_the_older_one() {
        let checked = CheckedAddrs::default();
        checked.remember("api.example.com", &[addr("93.184.216.34:443")]);
        checked.remember("api.example.com", &[addr("93.184.216.35:443")]);
        assert_eq!(
            checked.lookup("api.example.com"),
            Some(vec![addr("93.184.216.35:443")])
        );
    }
}
