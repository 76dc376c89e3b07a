//! A plugin's outbound HTTP, policed: the host checks every request against
//! the manifest before any connection, resolves the name itself and refuses
//! non-public addresses a rule does not name, connects to the address it
//! checked (no second lookup an attacker could rebind), adds credentials,
//! applies the rate limit, timeouts and the response-size cap.
//!
//! What a request holds on the host counts against the plugin's
//! [`HostBudget`]: its head and connection from the start, its body as it
//! is read (a body is read only once the rate limit lets the request go,
//! so requests waiting their turn hold none), the response's head and
//! connection until the plugin drops the response. A request that does not
//! fit fails with an error naming the budget.
//!
//! Redirects are never followed here: the plugin sees the 3xx, and the
//! request it makes next is checked like any other.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use fieldhook_credentials::{Applied, CallScope, Credentials};
use fieldhook_policy::grants::{self, Allowlist, Target};

use crate::Capabilities;
use crate::budget::{Charge, HostBudget, OverBudget};
use crate::refusals::Refusals;

/// Largest buffer of one connection, bytes: hyper's read buffer (and so
/// the largest response head) and its write queue.
pub const CONNECTION_BUFFER_BYTES: usize = 64 * 1024;

/// What one request in flight holds on the host besides its head and body:
/// its connection's read and write buffers, TLS records, the task sending
/// it. Charged from the start to the end of the response.
pub const PER_REQUEST_BYTES: usize = 2 * CONNECTION_BUFFER_BYTES + 32 * 1024;

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
    /// Why requests were refused during this call, for the job's reason
    /// and the log.
    pub refusals: Arc<Refusals>,
    /// Host memory the plugin's requests and responses may hold.
    pub budget: HostBudget,
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
    /// Records why a request was not sent (for the job's reason and the
    /// log) and returns what the plugin sees: `HTTP-request-denied` for the
    /// policy, an internal error (which the plugin may retry) for the rest.
    fn refuse(&self, refused: Refused) -> Error {
        let (reason, error) = match refused {
            Refused::Denied(r) => (r, Error::HttpRequestDenied),
            Refused::Unavailable(r) => (r.clone(), Error::InternalError(Some(r))),
        };
        self.refusals.record(&self.plugin, &reason);
        error
    }

    /// A request over the host memory budget: recorded like a refusal; the
    /// plugin gets an internal error carrying the budget's message.
    fn over_budget(&self, e: OverBudget) -> Error {
        self.refuse(Refused::Unavailable(format!("outbound HTTP not sent: {e}")))
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
        let head_bytes = head_size(&parts.uri, &parts.headers);
        let mut held = self
            .budget
            .charge(
                PER_REQUEST_BYTES.saturating_add(head_bytes.saturating_mul(2)),
                "an outbound request",
            )
            .map_err(|e| self.over_budget(e))?;
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

        // A body that says it is too large is refused before its turn.
        let declared = declared_length(&parts.headers, &body);
        if let Some(n) = declared
            && n > sandbox.max_request_bytes
        {
            return Err(Error::HttpRequestBodySize(Some(n)));
        }
        let destination = format!("{}:{}", auth.target.host, auth.target.port);
        // The body stays with the plugin (its writes wait) until the rate
        // limit lets this request go.
        self.caps.rates.acquire(&destination).await;
        // Buffered (capped, and charged) so a 401 can be retried with a new
        // token.
        let body = match collect_body(body, declared, sandbox.max_request_bytes, &mut held).await {
            Ok(body) => body,
            Err(BodyError::OverBudget(e)) => return Err(self.over_budget(e)),
            Err(BodyError::Http(e)) => return Err(e),
        };
        // Exactly the path the grant was checked against.
        let path = auth.target.path_and_query(parts.uri.query());
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
            if retried {
                self.caps.rates.acquire(&destination).await;
            }
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
            // From here on the request's head and body are not needed; the
            // response's connection is held until the plugin drops its body
            // (its head is the runtime's to count, with the response).
            held.shrink_to(PER_REQUEST_BYTES);
            let resp = resp.map(|incoming| {
                CappedBody {
                    inner: incoming,
                    remaining: max,
                    between,
                    timer: Box::pin(tokio::time::sleep(between)),
                    _held: held,
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
            .max_buf_size(CONNECTION_BUFFER_BYTES)
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

/// Bytes a request or response head holds: its URI and header names and
/// values, with the per-entry overhead of a header map.
pub fn head_size(uri: &http::Uri, headers: &HeaderMap) -> usize {
    const PER_ENTRY: usize = size_of::<HeaderName>() + size_of::<http::HeaderValue>();
    headers
        .iter()
        .fold(uri.to_string().len(), |sum, (name, value)| {
            sum.saturating_add(name.as_str().len())
                .saturating_add(value.len())
                .saturating_add(PER_ENTRY)
        })
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the cap, or the plugin's stream failed.
    Http(Error),
    /// The plugin's host memory budget cannot hold it.
    OverBudget(OverBudget),
}

/// The length a request says its body has: its `Content-Length` (which
/// wasmtime-wasi-http holds the plugin to) or the body's exact size.
pub fn declared_length(headers: &HeaderMap, body: &WasiBody) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| body.size_hint().exact())
}

/// Reads a plugin's request body, at most `max` bytes, growing `held` by
/// what the buffer takes before taking it. A `declared` length (see
/// [`declared_length`]) is checked first and reserved at once.
pub async fn collect_body(
    mut body: WasiBody,
    declared: Option<u64>,
    max: u64,
    held: &mut Charge,
) -> Result<Bytes, BodyError> {
    if let Some(n) = declared
        && n > max
    {
        return Err(BodyError::Http(Error::HttpRequestBodySize(Some(n))));
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let declared = declared.and_then(|n| usize::try_from(n).ok());
    // A declared length is reserved at once (no copies while growing);
    // otherwise the buffer grows (doubling, within the cap) and each growth
    // is charged before it happens.
    let mut buf: Vec<u8> = Vec::new();
    let mut charged = 0;
    let mut reserve = |buf: &mut Vec<u8>, capacity: usize| -> Result<(), BodyError> {
        // While growing, the old buffer and the new one are both held.
        held.grow(capacity, "a request body")
            .map_err(BodyError::OverBudget)?;
        buf.reserve_exact(capacity.saturating_sub(buf.len()));
        held.shrink_to(held.bytes().saturating_sub(charged));
        charged = capacity;
        Ok(())
    };
    if let Some(n) = declared.filter(|n| *n > 0) {
        reserve(&mut buf, n)?;
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Http)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not sent on
        };
        let len = buf.len().saturating_add(data.len());
        if len > max {
            return Err(BodyError::Http(Error::HttpRequestBodySize(Some(
                len as u64,
            ))));
        }
        if len > buf.capacity() {
            let capacity = len.max(buf.capacity().saturating_mul(2)).min(max);
            reserve(&mut buf, capacity)?;
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from(buf))
}

/// A response body with a size cap and a between-bytes timeout.
struct CappedBody {
    inner: hyper::body::Incoming,
    remaining: u64,
    between: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The connection and response head, held until the body is dropped.
    _held: Charge,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A body streamed in `left` frames of `size` bytes, with no length
    /// known ahead, as a plugin writes one.
    struct Chunks {
        left: usize,
        size: usize,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'b'; self.size])))))
        }
    }

    fn streamed(chunks: usize, size: usize) -> WasiBody {
        Chunks { left: chunks, size }.boxed_unsync()
    }

    #[tokio::test]
    async fn a_body_is_charged_as_it_is_buffered_and_one_past_the_budget_is_refused() {
        let budget = HostBudget::new(1 << 20);
        let mut held = budget.empty();
        let body = collect_body(streamed(8, 64 * 1024), None, u64::MAX, &mut held)
            .await
            .unwrap();
        assert_eq!(body.len(), 512 * 1024);
        assert_eq!(held.bytes(), 512 * 1024);

        let mut other = budget.empty();
        let Err(BodyError::OverBudget(e)) =
            collect_body(streamed(16, 64 * 1024), None, u64::MAX, &mut other).await
        else {
            panic!("a second body of 1 MiB does not fit next to the first");
        };
        assert_eq!(e.what, "a request body");
        drop(other);
        assert_eq!(budget.held(), 512 * 1024);
        drop(held);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_anything_is_read() {
        let budget = HostBudget::new(1 << 20);
        let mut held = budget.empty();
        let Err(BodyError::Http(Error::HttpRequestBodySize(Some(n)))) =
            collect_body(streamed(1, 1), Some(2000), 1000, &mut held).await
        else {
            panic!("expected the cap to refuse it");
        };
        assert_eq!((n, budget.held()), (2000, 0));
        // A declared length within the cap is reserved, and charged, at once.
        let body = collect_body(streamed(3, 100), Some(300), 1000, &mut held)
            .await
            .unwrap();
        assert_eq!((body.len(), held.bytes()), (300, 300));
    }
}
