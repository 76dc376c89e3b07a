//! Answering a plugin's outbound HTTP from somewhere other than the network,
//! and watching what it asks for: `fieldhook plugin run --responses` answers
//! from a file of canned responses and prints every request with its fate.
//!
//! A runtime built with a responder ([`super::Runtime::with_responder`])
//! hands it every instance's `wasi:http` requests instead of sending them:
//! each request is answered from it or denied with its rule, and nothing
//! leaves the process. The choice is per runtime, never process-wide: the
//! daemon's runtime has none.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::WasiBody;

use fieldhook_capabilities::outbound::{self, BodyError, CallHttp};

/// A request a plugin sent through `wasi:http`, body collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// HTTP method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// A response to hand to the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Answer with this response; nothing leaves the process.
    Canned(CannedResponse),
    /// Refuse it, naming the rule.
    Deny(String),
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from a canned response with this status.
    Canned(u16),
    /// Refused by the responder, with its rule.
    Denied(String),
}

/// Answers a plugin's outbound requests.
pub trait Responder: Send + Sync + 'static {
    /// Decides what to do with a request.
    fn respond(&self, request: &SeenRequest) -> Answer;
    /// Told what became of each request, in order.
    fn record(&self, request: SeenRequest, outcome: Outcome);
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

/// Answers one request of a plugin from `responder` and records its fate.
/// Its body is read within the same cap and host memory budget as a request
/// the daemon sends.
pub(crate) async fn answer(
    responder: Arc<dyn Responder>,
    call: CallHttp,
    request: http::Request<WasiBody>,
) -> Result<(http::Response<WasiBody>, IoFuture), wasmtime_wasi_http::Error> {
    let (parts, body) = request.into_parts();
    let mut held = call.budget.empty();
    let declared = outbound::declared_length(&parts.headers, &body);
    let max = call.caps.sandbox.max_request_bytes;
    let body = match outbound::collect_body(body, declared, max, &mut held).await {
        Ok(body) => body.to_vec(),
        Err(BodyError::Http(e)) => return Err(e),
        Err(BodyError::OverBudget(e)) => {
            let reason = format!("outbound HTTP not sent: {e}");
            call.refusals.record(&call.plugin, &reason);
            return Err(wasmtime_wasi_http::Error::InternalError(Some(reason)));
        }
    };
    let seen = SeenRequest {
        method: parts.method.to_string(),
        url: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    match responder.respond(&seen) {
        Answer::Canned(c) => {
            responder.record(seen, Outcome::Canned(c.status));
            let mut response = http::Response::builder().status(c.status);
            for (k, v) in &c.headers {
                response = response.header(k, v);
            }
            let response = response
                .body(
                    Full::new(Bytes::from(c.body))
                        .map_err(|e| match e {})
                        .boxed_unsync(),
                )
                .map_err(|_| wasmtime_wasi_http::Error::HttpProtocolError)?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        }
        Answer::Deny(rule) => {
            responder.record(seen, Outcome::Denied(rule));
            Err(wasmtime_wasi_http::Error::HttpRequestDenied)
        }
    }
}
