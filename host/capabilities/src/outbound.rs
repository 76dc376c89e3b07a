//! A plugin's outbound HTTP, policed: the host checks every request against
//! the manifest before any connection, resolves the name itself and refuses
//! non-public addresses a rule does not name, connects to the address it
//! checked (no second lookup an attacker could rebind), adds credentials,
//! applies the rate limit, timeouts and the response-size cap.
//!
//! Redirects are never followed here: the plugin sees the 3xx, and the
//! request it makes next is checked like any other.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderName;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use fieldhook_credentials::{Applied, CallScope, Credentials};
use fieldhook_policy::grants::{self, Allowlist, Target};

use crate::Capabilities;

/// The future that drives a connection after the response head arrived.
pub type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// One call's outbound HTTP context.
#[derive(Debug, Clone)]
pub struct CallHttp {
    /// Plugin name, for logs.
    pub plugin: String,
    /// The plugin's grants.
    pub allowlist: Allowlist,
    /// Daemon services.
    pub caps: Arc<Capabilities>,
    /// Credentials held for this call (sessions).
    pub scope: Arc<CallScope>,
    /// Why requests were refused during this call, for the job's reason.
    pub denials: Arc<Mutex<Vec<String>>>,
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The policy forbids it; it never will be sent as it is.
    #[error("{0}")]
    Denied(String),
    /// It could not be prepared now (DNS, a token endpoint); later may work.
    #[error("{0}")]
    Unavailable(String),
}

/// A request the policy allows, with where to connect.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The request's target.
    pub target: Target,
    /// The credential the matching rule names.
    pub credential: Option<String>,
    /// The checked addresses.
    pub addrs: Vec<SocketAddr>,
}

/// Checks a request against `allowlist` (and the credential its rule names
/// against where `credentials` lets it go), resolves its host and checks
/// every address. Nothing is connected yet.
pub async fn authorize(
    allowlist: &Allowlist,
    credentials: &Credentials,
    method: &str,
    uri: &http::Uri,
    timeout: Duration,
) -> Result<Authorized, Refused> {
    let target = Target::from_uri(method, uri).map_err(|d| Refused::Denied(d.to_string()))?;
    let grant = allowlist
        .check(&target)
        .map_err(|d| Refused::Denied(d.to_string()))?;
    let credential = grant.rule.credential.clone();
    // Checked when the plugin loaded; checked again here, where the secret
    // is about to leave.
    if let Some(name) = &credential {
        let spec = credentials.spec(name).ok_or_else(|| {
            Refused::Denied(format!(
                "credential `{name}` is not configured; add `[credentials.{name}]` to the daemon configuration"
            ))
        })?;
        if !crate::binding::allows(spec, &target.host, &target.path) {
            return Err(Refused::Denied(crate::binding::refusal(spec, grant.rule)));
        }
    }
    let addrs: Vec<SocketAddr> = match target.host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::time::timeout(
            timeout,
            tokio::net::lookup_host((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| Refused::Unavailable(format!("DNS lookup of {} timed out", target.host)))?
        .map_err(|e| Refused::Unavailable(format!("DNS lookup of {} failed: {e}", target.host)))?
        .collect(),
    };
    if addrs.is_empty() {
        return Err(Refused::Unavailable(format!(
            "{} has no address",
            target.host
        )));
    }
    // Every address must pass: a name with one public and one private
    // address must not reach the private one by chance.
    for a in &addrs {
        grants::check_address(&grant, &target, a.ip())
            .map_err(|d| Refused::Denied(d.to_string()))?;
    }
    Ok(Authorized {
        target,
        credential,
        addrs,
    })
}

impl CallHttp {
    /// Records why a request was not sent (for the job's reason) and
    /// returns what the plugin sees: `HTTP-request-denied` for the policy,
    /// an internal error (which the plugin may retry) for the rest.
    fn refuse(&self, refused: Refused) -> Error {
        let (reason, error) = match refused {
            Refused::Denied(r) => (r, Error::HttpRequestDenied),
            Refused::Unavailable(r) => (r.clone(), Error::InternalError(Some(r))),
        };
        tracing::warn!(plugin = %self.plugin, "{reason}");
        let mut d = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        if d.len() < 16 {
            d.push(reason);
        }
        error
    }

    fn deny(&self, reason: String) -> Error {
        self.refuse(Refused::Denied(reason))
    }

    /// Whether a plugin may set header `name`.
    pub fn forbidden(caps: &Capabilities, name: &HeaderName) -> bool {
        caps.credentials
            .forbidden_headers()
            .iter()
            .any(|f| f == name.as_str())
            || wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    /// Sends one request of the plugin.
    pub async fn send(
        self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
        let sandbox = &self.caps.sandbox;
        let (parts, body) = request.into_parts();
        let auth = authorize(
            &self.allowlist,
            &self.caps.credentials,
            parts.method.as_str(),
            &parts.uri,
            sandbox.connect_timeout(),
        )
        .await
        .map_err(|r| self.refuse(r))?;
        // The header filter already refuses these when the plugin sets
        // them; checked again here, as it is where credentials are added.
        if let Some(name) = parts
            .headers
            .keys()
            .find(|n| Self::forbidden(&self.caps, n) && *n != http::header::HOST)
        {
            return Err(self.deny(format!(
                "outbound HTTP denied: plugins may not set the `{name}` header; name a credential \
                 in the [[http]] rule and the host adds it"
            )));
        }
        let opt = options.unwrap_or_default();
        let connect_timeout = opt
            .connect_timeout
            .unwrap_or(sandbox.connect_timeout())
            .min(sandbox.connect_timeout());
        let first_byte = opt
            .first_byte_timeout
            .unwrap_or(sandbox.first_byte_timeout())
            .min(sandbox.first_byte_timeout());
        let between = opt
            .between_bytes_timeout
            .unwrap_or(sandbox.between_bytes_timeout())
            .min(sandbox.between_bytes_timeout())
            .max(Duration::from_millis(1));

        // Buffered (and capped) so a 401 can be retried with a new token.
        let body = collect_capped(body, sandbox.max_request_bytes).await?;
        // Exactly the path the grant was checked against.
        let path = auth.target.path_and_query(parts.uri.query());
        let destination = format!("{}:{}", auth.target.host, auth.target.port);
        let mut retried = false;
        loop {
            let applied: Option<Applied> = match &auth.credential {
                Some(name) => Some(
                    self.caps
                        .credentials
                        .apply(name, &self.scope)
                        .await
                        .map_err(|e| {
                            self.refuse(Refused::Unavailable(format!(
                                "outbound HTTP not sent: {e}"
                            )))
                        })?,
                ),
                None => None,
            };
            let mut req = http::Request::builder()
                .method(parts.method.clone())
                .uri(path.as_str())
                .body(Full::new(body.clone()))
                .map_err(|e| Error::InternalError(Some(e.to_string())))?;
            *req.headers_mut() = parts.headers.clone();
            if let Some(a) = &applied {
                for (n, v) in &a.headers {
                    req.headers_mut().insert(n.clone(), v.clone());
                }
            }
            self.caps.rates.acquire(&destination).await;
            let (resp, io) = send_once(&auth, req, connect_timeout, first_byte).await?;
            if resp.status() == http::StatusCode::UNAUTHORIZED
                && !retried
                && let (Some(name), Some(a)) = (&auth.credential, &applied)
                && self.caps.credentials.rejected(name, a, &self.scope).await
            {
                tracing::info!(plugin = %self.plugin, credential = %name, "401: retrying once with fresh credentials");
                retried = true;
                continue;
            }
            let max = sandbox.max_response_bytes;
            if let Some(len) = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                && len > max
            {
                tracing::warn!(plugin = %self.plugin, len, max, "response refused: larger than [sandbox] max_response_bytes");
                return Err(Error::HttpResponseBodySize(Some(len)));
            }
            let resp = resp.map(|incoming| {
                CappedBody {
                    inner: incoming,
                    remaining: max,
                    between,
                    timer: Box::pin(tokio::time::sleep(between)),
                }
                .boxed_unsync()
            });
            return Ok((resp, io));
        }
    }
}

/// Connects to the checked addresses (in order) and sends one request.
async fn send_once(
    auth: &Authorized,
    req: http::Request<Full<Bytes>>,
    connect_timeout: Duration,
    first_byte: Duration,
) -> Result<(http::Response<hyper::body::Incoming>, IoFuture), Error> {
    let connect = async {
        let mut last = None;
        for a in &auth.addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(Error::ConnectionRefused, Error::Connect))
    };
    let tcp = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let (resp, io) = if auth.target.scheme == "https" {
        let server_name = rustls::pki_types::ServerName::try_from(auth.target.host.clone())
            .map_err(|_| Error::TlsProtocolError)?;
        let tls = tokio::time::timeout(connect_timeout, tls_connector().connect(server_name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        handshake_and_send(tls, req, connect_timeout, first_byte).await?
    } else {
        handshake_and_send(tcp, req, connect_timeout, first_byte).await?
    };
    Ok((resp, io))
}

async fn handshake_and_send<S>(
    stream: S,
    req: http::Request<Full<Bytes>>,
    connect_timeout: Duration,
    first_byte: Duration,
) -> Result<(http::Response<hyper::body::Incoming>, IoFuture), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new()
            .handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The connection is driven on its own task while the request is sent;
    // the task ends when the response body is done or dropped.
    let driver = tokio::spawn(conn);
    let resp = tokio::time::timeout(first_byte, sender.send_request(req))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let io: IoFuture = Box::new(async move {
        match driver.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(_) => Ok(()),
        }
    });
    Ok((resp, io))
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            });
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

async fn collect_capped(body: WasiBody, max: u64) -> Result<Bytes, Error> {
    let limited = http_body_util::Limited::new(body, max as usize);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => match e.downcast::<Error>() {
            Ok(inner) => Err(*inner),
            Err(_) => Err(Error::HttpRequestBodySize(None)),
        },
    }
}

/// A response body with a size cap and a between-bytes timeout.
struct CappedBody {
    inner: hyper::body::Incoming,
    remaining: u64,
    between: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > self.remaining {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
                    }
                    self.remaining -= n;
                }
                let next = tokio::time::Instant::now() + self.between;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
