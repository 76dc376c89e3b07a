//! The embedder's policy on a plugin's outbound HTTP, as wasmtime-wasi-http
//! hooks: its own module so the HTTP budget and the plugin state both use
//! it without importing each other.

use std::sync::Arc;

use wasmtime_wasi_http::WasiHttpHooks;

use crate::responder::Responder;
use fieldhook_capabilities::outbound::CallHttp;

/// Largest write the plugin may make to an outgoing body at once, bytes.
/// wasmtime-wasi-http buffers up to two writes per body until the host
/// reads them (its default, 1 MiB, would let each open body hold 2 MiB).
pub(crate) const BODY_CHUNK_BYTES: usize = 64 * 1024;

/// Writes an outgoing body buffers before the plugin must wait.
pub(crate) const BODY_BUFFER_CHUNKS: usize = 1;

/// The embedder's policy on a plugin's outbound HTTP: every request is
/// checked against the manifest's grants before any connection, and sent by
/// the host ([`CallHttp::send`]); or, in tools, answered by a [`Responder`]
/// chosen when the runtime was built.
pub struct HttpPolicy {
    pub(crate) call: CallHttp,
    pub(crate) responder: Option<Arc<dyn Responder>>,
}

impl HttpPolicy {
    /// Records something the host refused the plugin, for the call's
    /// outcome and the log.
    pub(crate) fn record_refusal(&self, reason: &str) {
        self.call.refusals.record(&self.call.plugin, reason);
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        // Authorization, Cookie and every credential's header: the host
        // adds credentials, a plugin can neither set nor forge them.
        let caps = self.call.caps.clone();
        Arc::new(move |name| CallHttp::forbidden(&caps, name))
    }

    // Small writes, so an open body buffers little on the host until its
    // request is sent (see crate::http_budget).
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        BODY_BUFFER_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
    }

    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        match &self.responder {
            Some(responder) => Box::new(crate::responder::answer(
                responder.clone(),
                self.call.clone(),
                request,
            )),
            None => Box::new(self.call.clone().send(request, options)),
        }
    }
}
