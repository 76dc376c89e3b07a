//! Answering a plugin's outbound HTTP from somewhere other than the network,
//! and watching what it asks for: `fieldhook plugin run --responses` answers
//! from a file of canned responses and prints every request with its fate.
//!
//! With a responder installed ([`super::Runtime::with_responder`]) the
//! runtime routes `wasi:http/outgoing-handler` through it instead of the
//! plugin's outbound policy: each request is answered from it or denied with
//! its rule, and nothing leaves the process. The linker's host functions are
//! plain `fn` pointers over the store data, which this module does not own,
//! so the responder is process-wide: one per process, meant for tools.

use std::future::Future;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler;
use wasmtime_wasi_http::{WasiBody, WasiHttp, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::state::PluginState;

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

static RESPONDER: RwLock<Option<Arc<dyn Responder>>> = RwLock::new(None);

/// Makes `responder` the process's responder.
pub(super) fn install(responder: Arc<dyn Responder>) {
    *RESPONDER.write().unwrap_or_else(|p| p.into_inner()) = Some(responder);
}

fn current() -> Option<Arc<dyn Responder>> {
    RESPONDER.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Routes `wasi:http/outgoing-handler` through the installed responder.
pub(super) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<PluginState>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    outgoing_handler::add_to_linker::<_, WasiHttp>(linker, intercepted)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The plugin's HTTP view with the responder's hooks in place of its policy.
fn intercepted(state: &mut PluginState) -> WasiHttpCtxView<'_> {
    let mut view = state.http();
    // A zero-sized value: leaking its box allocates nothing.
    view.hooks = Box::leak(Box::new(ResponderHooks));
    view
}

/// Hooks that ask the installed responder and record each outcome.
struct ResponderHooks;

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;
type SendFuture = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), wasmtime_wasi_http::Error>>
        + Send,
>;

impl WasiHttpHooks for ResponderHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let (parts, body) = request.into_parts();
        Box::new(async move {
            let Some(responder) = current() else {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            };
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
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
        })
    }
}
