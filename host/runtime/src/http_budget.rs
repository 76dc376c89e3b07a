//! A plugin's `wasi:http` imports, with what each resource holds on the
//! host charged to the plugin's [`HostBudget`].
//!
//! wasmtime-wasi-http implements the interfaces; [`HttpView`] forwards each
//! call to it and keeps the books. A header map (`fields`) is charged its
//! names and values before it grows (wasmtime-wasi-http's own measure of a
//! map, plus the table entry); an outgoing request or response carries its
//! headers' charge, and what its body may buffer; a response from the
//! network is charged its head. Dropping or sending a resource gives its
//! charge back. What a request holds while it is sent is charged by
//! [`fieldhook_capabilities::outbound`], against the same budget.
//!
//! A charge that does not fit is refused before anything is allocated: a
//! request fails with an error code naming the budget; a header map traps,
//! as `wasi:http@0.2` has no error for "too large" (wasmtime-wasi-http traps
//! on its own per-map limit the same way). Every refusal is recorded for
//! the call's outcome.
//!
//! Handles the books do not count (streams, pollables) are bounded by the
//! resource table's capacity, which grows with the budget too
//! ([`max_handles`]).

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};
use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
use wasmtime_wasi_http::p2::body::{HostFutureTrailers, HostIncomingBody, HostOutgoingBody};
use wasmtime_wasi_http::p2::types::{
    HostFutureIncomingResponse, HostIncomingRequest, HostIncomingResponse, HostOutgoingRequest,
    HostOutgoingResponse, HostResponseOutparam,
};
use wasmtime_wasi_http::p2::{HeaderError, HeaderResult, HttpError, HttpResult};
use wasmtime_wasi_http::{FieldMap, WasiHttpCtx, WasiHttpCtxView};

use crate::http_policy::{BODY_BUFFER_CHUNKS, BODY_CHUNK_BYTES, HttpPolicy};
use fieldhook_capabilities::budget::{Charge, HostBudget, OverBudget};

/// A table entry and the resource's own struct (an empty map, a request
/// without headers, a future), bytes.
pub(crate) const ENTRY_BYTES: usize = 512;

/// Largest header map (or trailers) a plugin may build, bytes:
/// wasmtime-wasi-http's default limit, kept.
const FIELDS_LIMIT_BYTES: usize = 128 * 1024;

/// What an outgoing body may hold until its request is sent: the writes
/// buffered in its channel and the trailers it may finish with.
const BODY_BYTES: usize = (BODY_BUFFER_CHUNKS + 1) * BODY_CHUNK_BYTES + FIELDS_LIMIT_BYTES;

/// Resource handles one instance may hold at once: one per 2 KiB of its
/// budget (at least 256), so the handles not charged one by one (streams,
/// pollables, a few hundred bytes each) stay a small share of it.
pub(crate) fn max_handles(budget_bytes: usize) -> usize {
    (budget_bytes / 2048).max(256)
}

/// A fresh context for one instance's `wasi:http`.
pub(crate) fn context() -> WasiHttpCtx {
    let mut ctx = WasiHttpCtx::new();
    ctx.set_field_size_limit(FIELDS_LIMIT_BYTES);
    ctx
}

/// Adds `wasi:http/types` and `wasi:http/outgoing-handler`, through
/// [`HttpView`], to the linker.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> HttpView<'_>,
) -> wasmtime::Result<()> {
    let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
    outgoing_handler::add_to_linker::<_, BudgetedHttp>(linker, view)?;
    types::add_to_linker::<_, BudgetedHttp>(linker, &options.into(), view)?;
    Ok(())
}

/// The charges of one instance's `wasi:http` resources, by table index.
pub(crate) struct HttpHoldings {
    budget: HostBudget,
    by_rep: HashMap<u32, Charge>,
}

impl HttpHoldings {
    pub(crate) fn new(budget: HostBudget) -> Self {
        Self {
            budget,
            by_rep: HashMap::new(),
        }
    }

    fn charge(&self, bytes: usize, what: &'static str) -> Result<Charge, OverBudget> {
        self.budget.charge(bytes, what)
    }

    /// Records `charge` as what the resource at `rep` holds (any stale
    /// charge for that index is given back).
    fn keep(&mut self, rep: u32, charge: Charge) {
        self.by_rep.insert(rep, charge);
    }

    /// The resource at `rep` is gone: its charge, to give back (by
    /// dropping it) or to move on.
    fn release(&mut self, rep: u32) -> Option<Charge> {
        self.by_rep.remove(&rep)
    }

    /// The charge of the resource at `rep`, created empty if it had none.
    fn of(&mut self, rep: u32) -> &mut Charge {
        let budget = &self.budget;
        self.by_rep.entry(rep).or_insert_with(|| budget.empty())
    }
}

/// [`HasData`] for the budgeted `wasi:http` imports.
pub(crate) struct BudgetedHttp;

impl HasData for BudgetedHttp {
    type Data<'a> = HttpView<'a>;
}

/// One `wasi:http` call's view of the instance: wasmtime-wasi-http's
/// state, and the books.
pub(crate) struct HttpView<'a> {
    pub(crate) ctx: &'a mut WasiHttpCtx,
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) hooks: &'a mut HttpPolicy,
    pub(crate) held: &'a mut HttpHoldings,
}

impl HttpView<'_> {
    /// wasmtime-wasi-http's view, for forwarding.
    fn inner(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: self.ctx,
            table: self.table,
            hooks: self.hooks,
        }
    }

    /// Records a refusal for the call's outcome and the log, and hands it
    /// back.
    fn refused(&mut self, e: OverBudget) -> OverBudget {
        self.hooks.record_refusal(&e.to_string());
        e
    }

    /// Charges `bytes` for a new resource, or refuses.
    fn charge(&mut self, bytes: usize, what: &'static str) -> Result<Charge, OverBudget> {
        match self.held.charge(bytes, what) {
            Ok(c) => Ok(c),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// An outgoing body's entry, and what it may buffer until its request
    /// is sent; the plugin gets "no body" (`Err(())`) when they do not fit.
    fn body_charges(&mut self, what: &'static str) -> Result<(Charge, Charge), OverBudget> {
        let entry = self.charge(ENTRY_BYTES, what)?;
        let buffer = self.charge(BODY_BYTES, what)?;
        Ok((entry, buffer))
    }

    /// Grows the charge of the map at `rep` by `more` before it grows.
    fn reserve(&mut self, rep: u32, more: usize) -> Result<usize, OverBudget> {
        let charge = self.held.of(rep);
        let before = charge.bytes();
        match charge.grow(more, "a header map") {
            Ok(()) => Ok(before),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// After a map changed (or did not): its charge is what it holds now.
    fn settle(&mut self, rep: u32, changed: bool, before: usize) {
        let now = match (changed, self.table.get_any_mut(rep)) {
            (true, Ok(any)) => any
                .downcast_ref::<FieldMap>()
                .map_or(before, |map| ENTRY_BYTES.saturating_add(map_bytes(map))),
            _ => before,
        };
        self.held.of(rep).shrink_to(now);
    }
}

/// Bytes a header map holds, by wasmtime-wasi-http's measure: each name
/// and value with the size of its handle.
fn map_bytes(map: &HeaderMap) -> usize {
    let names = map.keys().fold(0usize, |sum, n| {
        sum.saturating_add(n.as_str().len())
            .saturating_add(size_of::<HeaderName>())
    });
    map.values().fold(names, |sum, v| {
        sum.saturating_add(v.len())
            .saturating_add(size_of::<HeaderValue>())
    })
}

/// Upper bound of what adding `name` with `values` adds to a map.
fn growth<'v>(name: &str, values: impl IntoIterator<Item = &'v Vec<u8>>) -> usize {
    values.into_iter().fold(
        name.len().saturating_add(size_of::<HeaderName>()),
        |sum, v| {
            sum.saturating_add(v.len())
                .saturating_add(size_of::<HeaderValue>())
        },
    )
}

fn trap(e: OverBudget) -> wasmtime::Error {
    wasmtime::Error::new(e)
}

fn internal(e: OverBudget) -> types::ErrorCode {
    types::ErrorCode::InternalError(Some(e.to_string()))
}

impl outgoing_handler::Host for HttpView<'_> {
    fn handle(
        &mut self,
        request: Resource<HostOutgoingRequest>,
        options: Option<Resource<types::RequestOptions>>,
    ) -> HttpResult<Resource<HostFutureIncomingResponse>> {
        let rep = request.rep();
        let future = match self.charge(ENTRY_BYTES, "an outbound request") {
            Ok(c) => c,
            Err(e) => {
                // The request was handed over: it goes, with its charge.
                self.table.delete(request)?;
                self.held.release(rep);
                return Err(internal(e).into());
            }
        };
        let out = outgoing_handler::Host::handle(&mut self.inner(), request, options);
        // Sent or refused, the request left the table; sending charges
        // what it holds from here on.
        self.held.release(rep);
        let out = out?;
        self.held.keep(out.rep(), future);
        Ok(out)
    }
}

impl types::Host for HttpView<'_> {
    fn convert_error_code(&mut self, err: HttpError) -> wasmtime::Result<types::ErrorCode> {
        types::Host::convert_error_code(&mut self.inner(), err)
    }

    fn convert_header_error(&mut self, err: HeaderError) -> wasmtime::Result<types::HeaderError> {
        types::Host::convert_header_error(&mut self.inner(), err)
    }

    fn http_error_code(
        &mut self,
        err: Resource<types::IoError>,
    ) -> wasmtime::Result<Option<types::ErrorCode>> {
        types::Host::http_error_code(&mut self.inner(), err)
    }
}

impl types::HostFields for HttpView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<FieldMap>> {
        let charge = self.charge(ENTRY_BYTES, "a header map").map_err(trap)?;
        let fields = types::HostFields::new(&mut self.inner())?;
        self.held.keep(fields.rep(), charge);
        Ok(fields)
    }

    fn from_list(&mut self, entries: Vec<(String, Vec<u8>)>) -> HeaderResult<Resource<FieldMap>> {
        let bytes = entries.iter().fold(ENTRY_BYTES, |sum, (name, value)| {
            sum.saturating_add(growth(name, [value]))
        });
        let charge = self
            .charge(bytes, "a header map")
            .map_err(|e| HeaderError::trap(trap(e)))?;
        let fields = types::HostFields::from_list(&mut self.inner(), entries)?;
        self.held.keep(fields.rep(), charge);
        self.settle(fields.rep(), true, bytes);
        Ok(fields)
    }

    fn drop(&mut self, fields: Resource<FieldMap>) -> wasmtime::Result<()> {
        let rep = fields.rep();
        types::HostFields::drop(&mut self.inner(), fields)?;
        self.held.release(rep);
        Ok(())
    }

    fn get(&mut self, fields: Resource<FieldMap>, name: String) -> wasmtime::Result<Vec<Vec<u8>>> {
        types::HostFields::get(&mut self.inner(), fields, name)
    }

    fn has(&mut self, fields: Resource<FieldMap>, name: String) -> wasmtime::Result<bool> {
        types::HostFields::has(&mut self.inner(), fields, name)
    }

    fn set(
        &mut self,
        fields: Resource<FieldMap>,
        name: String,
        values: Vec<Vec<u8>>,
    ) -> HeaderResult<()> {
        let rep = fields.rep();
        let before = self
            .reserve(rep, growth(&name, &values))
            .map_err(|e| HeaderError::trap(trap(e)))?;
        let out = types::HostFields::set(&mut self.inner(), fields, name, values);
        self.settle(rep, out.is_ok(), before);
        out
    }

    fn delete(&mut self, fields: Resource<FieldMap>, name: String) -> HeaderResult<()> {
        let rep = fields.rep();
        let before = self.held.of(rep).bytes();
        let out = types::HostFields::delete(&mut self.inner(), fields, name);
        self.settle(rep, out.is_ok(), before);
        out
    }

    fn append(
        &mut self,
        fields: Resource<FieldMap>,
        name: String,
        value: Vec<u8>,
    ) -> HeaderResult<()> {
        let rep = fields.rep();
        let before = self
            .reserve(rep, growth(&name, [&value]))
            .map_err(|e| HeaderError::trap(trap(e)))?;
        let out = types::HostFields::append(&mut self.inner(), fields, name, value);
        self.settle(rep, out.is_ok(), before);
        out
    }

    fn entries(&mut self, fields: Resource<FieldMap>) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        types::HostFields::entries(&mut self.inner(), fields)
    }

    fn clone(&mut self, fields: Resource<FieldMap>) -> wasmtime::Result<Resource<FieldMap>> {
        // A copy, once the plugin changes it: charged in full.
        let bytes = ENTRY_BYTES.saturating_add(map_bytes(self.table.get(&fields)?));
        let charge = self.charge(bytes, "a header map").map_err(trap)?;
        let copy = types::HostFields::clone(&mut self.inner(), fields)?;
        self.held.keep(copy.rep(), charge);
        Ok(copy)
    }
}

impl types::HostOutgoingRequest for HttpView<'_> {
    fn new(
        &mut self,
        headers: Resource<FieldMap>,
    ) -> wasmtime::Result<Resource<HostOutgoingRequest>> {
        let fields = headers.rep();
        let mut charge = self
            .charge(ENTRY_BYTES, "an outbound request")
            .map_err(trap)?;
        let request = types::HostOutgoingRequest::new(&mut self.inner(), headers)?;
        // The map moved into the request, and its charge with it.
        if let Some(map) = self.held.release(fields) {
            charge.absorb(map);
        }
        self.held.keep(request.rep(), charge);
        Ok(request)
    }

    fn body(
        &mut self,
        request: Resource<HostOutgoingRequest>,
    ) -> wasmtime::Result<Result<Resource<HostOutgoingBody>, ()>> {
        let rep = request.rep();
        let Ok((entry, buffer)) = self.body_charges("a request body") else {
            return Ok(Err(()));
        };
        let body = types::HostOutgoingRequest::body(&mut self.inner(), request)?;
        if let Ok(body) = &body {
            // What the body buffers lives in the request until it is sent.
            self.held.of(rep).absorb(buffer);
            self.held.keep(body.rep(), entry);
        }
        Ok(body)
    }

    fn drop(&mut self, request: Resource<HostOutgoingRequest>) -> wasmtime::Result<()> {
        let rep = request.rep();
        types::HostOutgoingRequest::drop(&mut self.inner(), request)?;
        self.held.release(rep);
        Ok(())
    }

    fn method(
        &mut self,
        request: Resource<HostOutgoingRequest>,
    ) -> wasmtime::Result<types::Method> {
        types::HostOutgoingRequest::method(&mut self.inner(), request)
    }

    fn set_method(
        &mut self,
        request: Resource<HostOutgoingRequest>,
        method: types::Method,
    ) -> wasmtime::Result<Result<(), ()>> {
        types::HostOutgoingRequest::set_method(&mut self.inner(), request, method)
    }

    fn path_with_query(
        &mut self,
        request: Resource<HostOutgoingRequest>,
    ) -> wasmtime::Result<Option<String>> {
        types::HostOutgoingRequest::path_with_query(&mut self.inner(), request)
    }

    fn set_path_with_query(
        &mut self,
        request: Resource<HostOutgoingRequest>,
        path_with_query: Option<String>,
    ) -> wasmtime::Result<Result<(), ()>> {
        types::HostOutgoingRequest::set_path_with_query(&mut self.inner(), request, path_with_query)
    }

    fn scheme(
        &mut self,
        request: Resource<HostOutgoingRequest>,
    ) -> wasmtime::Result<Option<types::Scheme>> {
        types::HostOutgoingRequest::scheme(&mut self.inner(), request)
    }

    fn set_scheme(
        &mut self,
        request: Resource<HostOutgoingRequest>,
        scheme: Option<types::Scheme>,
    ) -> wasmtime::Result<Result<(), ()>> {
        types::HostOutgoingRequest::set_scheme(&mut self.inner(), request, scheme)
    }

    fn authority(
        &mut self,
        request: Resource<HostOutgoingRequest>,
    ) -> wasmtime::Result<Option<String>> {
        types::HostOutgoingRequest::authority(&mut self.inner(), request)
    }

    fn set_authority(
        &mut self,
        request: Resource<HostOutgoingRequest>,
        authority: Option<String>,
    ) -> wasmtime::Result<Result<(), ()>> {
        types::HostOutgoingRequest::set_authority(&mut self.inner(), request, authority)
    }

    fn headers(
        &mut self,
        request: Resource<HostOutgoingRequest>,
    ) -> wasmtime::Result<Resource<FieldMap>> {
        // A shared, immutable view of the request's map: only the entry.
        let charge = self.charge(ENTRY_BYTES, "a header map").map_err(trap)?;
        let fields = types::HostOutgoingRequest::headers(&mut self.inner(), request)?;
        self.held.keep(fields.rep(), charge);
        Ok(fields)
    }
}

impl types::HostOutgoingResponse for HttpView<'_> {
    fn new(
        &mut self,
        headers: Resource<FieldMap>,
    ) -> wasmtime::Result<Resource<HostOutgoingResponse>> {
        let fields = headers.rep();
        let mut charge = self.charge(ENTRY_BYTES, "a response").map_err(trap)?;
        let response = types::HostOutgoingResponse::new(&mut self.inner(), headers)?;
        if let Some(map) = self.held.release(fields) {
            charge.absorb(map);
        }
        self.held.keep(response.rep(), charge);
        Ok(response)
    }

    fn body(
        &mut self,
        response: Resource<HostOutgoingResponse>,
    ) -> wasmtime::Result<Result<Resource<HostOutgoingBody>, ()>> {
        let rep = response.rep();
        let Ok((entry, buffer)) = self.body_charges("a response body") else {
            return Ok(Err(()));
        };
        let body = types::HostOutgoingResponse::body(&mut self.inner(), response)?;
        if let Ok(body) = &body {
            self.held.of(rep).absorb(buffer);
            self.held.keep(body.rep(), entry);
        }
        Ok(body)
    }

    fn status_code(
        &mut self,
        response: Resource<HostOutgoingResponse>,
    ) -> wasmtime::Result<types::StatusCode> {
        types::HostOutgoingResponse::status_code(&mut self.inner(), response)
    }

    fn set_status_code(
        &mut self,
        response: Resource<HostOutgoingResponse>,
        status: types::StatusCode,
    ) -> wasmtime::Result<Result<(), ()>> {
        types::HostOutgoingResponse::set_status_code(&mut self.inner(), response, status)
    }

    fn headers(
        &mut self,
        response: Resource<HostOutgoingResponse>,
    ) -> wasmtime::Result<Resource<FieldMap>> {
        let charge = self.charge(ENTRY_BYTES, "a header map").map_err(trap)?;
        let fields = types::HostOutgoingResponse::headers(&mut self.inner(), response)?;
        self.held.keep(fields.rep(), charge);
        Ok(fields)
    }

    fn drop(&mut self, response: Resource<HostOutgoingResponse>) -> wasmtime::Result<()> {
        let rep = response.rep();
        types::HostOutgoingResponse::drop(&mut self.inner(), response)?;
        self.held.release(rep);
        Ok(())
    }
}

impl types::HostOutgoingBody for HttpView<'_> {
    fn write(
        &mut self,
        body: Resource<HostOutgoingBody>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        types::HostOutgoingBody::write(&mut self.inner(), body)
    }

    fn finish(
        &mut self,
        body: Resource<HostOutgoingBody>,
        trailers: Option<Resource<FieldMap>>,
    ) -> HttpResult<()> {
        let rep = body.rep();
        let trailers_rep = trailers.as_ref().map(|t| t.rep());
        let out = types::HostOutgoingBody::finish(&mut self.inner(), body, trailers);
        // The body and its trailers left the table (the request's charge
        // covers what they hold until it is sent).
        self.held.release(rep);
        if let Some(t) = trailers_rep {
            self.held.release(t);
        }
        out
    }

    fn drop(&mut self, body: Resource<HostOutgoingBody>) -> wasmtime::Result<()> {
        let rep = body.rep();
        types::HostOutgoingBody::drop(&mut self.inner(), body)?;
        self.held.release(rep);
        Ok(())
    }
}

impl types::HostFutureIncomingResponse for HttpView<'_> {
    fn get(
        &mut self,
        future: Resource<HostFutureIncomingResponse>,
    ) -> wasmtime::Result<
        Option<Result<Result<Resource<HostIncomingResponse>, types::ErrorCode>, ()>>,
    > {
        let out = types::HostFutureIncomingResponse::get(&mut self.inner(), future)?;
        let Some(Ok(Ok(response))) = out else {
            return Ok(out);
        };
        // The response's head, from the network, is held with it.
        let head = map_bytes(&self.table.get(&response)?.headers);
        match self.charge(ENTRY_BYTES.saturating_add(head), "a response") {
            Ok(charge) => {
                self.held.keep(response.rep(), charge);
                Ok(Some(Ok(Ok(response))))
            }
            Err(e) => {
                self.table.delete(response)?;
                Ok(Some(Ok(Err(internal(e)))))
            }
        }
    }

    fn subscribe(
        &mut self,
        future: Resource<HostFutureIncomingResponse>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        types::HostFutureIncomingResponse::subscribe(&mut self.inner(), future)
    }

    fn drop(&mut self, future: Resource<HostFutureIncomingResponse>) -> wasmtime::Result<()> {
        let rep = future.rep();
        types::HostFutureIncomingResponse::drop(&mut self.inner(), future)?;
        self.held.release(rep);
        Ok(())
    }
}

impl types::HostIncomingResponse for HttpView<'_> {
    fn drop(&mut self, response: Resource<HostIncomingResponse>) -> wasmtime::Result<()> {
        let rep = response.rep();
        types::HostIncomingResponse::drop(&mut self.inner(), response)?;
        self.held.release(rep);
        Ok(())
    }

    fn status(
        &mut self,
        response: Resource<HostIncomingResponse>,
    ) -> wasmtime::Result<types::StatusCode> {
        types::HostIncomingResponse::status(&mut self.inner(), response)
    }

    fn headers(
        &mut self,
        response: Resource<HostIncomingResponse>,
    ) -> wasmtime::Result<Resource<FieldMap>> {
        let charge = self.charge(ENTRY_BYTES, "a header map").map_err(trap)?;
        let fields = types::HostIncomingResponse::headers(&mut self.inner(), response)?;
        self.held.keep(fields.rep(), charge);
        Ok(fields)
    }

    fn consume(
        &mut self,
        response: Resource<HostIncomingResponse>,
    ) -> wasmtime::Result<Result<Resource<HostIncomingBody>, ()>> {
        let charge = self.charge(ENTRY_BYTES, "a response body").map_err(trap)?;
        let out = types::HostIncomingResponse::consume(&mut self.inner(), response)?;
        if let Ok(body) = &out {
            self.held.keep(body.rep(), charge);
        }
        Ok(out)
    }
}

impl types::HostIncomingBody for HttpView<'_> {
    fn stream(
        &mut self,
        body: Resource<HostIncomingBody>,
    ) -> wasmtime::Result<Result<Resource<DynInputStream>, ()>> {
        types::HostIncomingBody::stream(&mut self.inner(), body)
    }

    fn finish(
        &mut self,
        body: Resource<HostIncomingBody>,
    ) -> wasmtime::Result<Resource<HostFutureTrailers>> {
        let rep = body.rep();
        let trailers = types::HostIncomingBody::finish(&mut self.inner(), body)?;
        // The body's entry becomes the future's.
        if let Some(charge) = self.held.release(rep) {
            self.held.keep(trailers.rep(), charge);
        }
        Ok(trailers)
    }

    fn drop(&mut self, body: Resource<HostIncomingBody>) -> wasmtime::Result<()> {
        let rep = body.rep();
        types::HostIncomingBody::drop(&mut self.inner(), body)?;
        self.held.release(rep);
        Ok(())
    }
}

impl types::HostFutureTrailers for HttpView<'_> {
    fn drop(&mut self, trailers: Resource<HostFutureTrailers>) -> wasmtime::Result<()> {
        let rep = trailers.rep();
        types::HostFutureTrailers::drop(&mut self.inner(), trailers)?;
        self.held.release(rep);
        Ok(())
    }

    fn subscribe(
        &mut self,
        trailers: Resource<HostFutureTrailers>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        types::HostFutureTrailers::subscribe(&mut self.inner(), trailers)
    }

    fn get(
        &mut self,
        trailers: Resource<HostFutureTrailers>,
    ) -> wasmtime::Result<Option<Result<Result<Option<Resource<FieldMap>>, types::ErrorCode>, ()>>>
    {
        let out = types::HostFutureTrailers::get(&mut self.inner(), trailers)?;
        let Some(Ok(Ok(Some(fields)))) = out else {
            return Ok(out);
        };
        let bytes = ENTRY_BYTES.saturating_add(map_bytes(self.table.get(&fields)?));
        match self.charge(bytes, "response trailers") {
            Ok(charge) => {
                self.held.keep(fields.rep(), charge);
                Ok(Some(Ok(Ok(Some(fields)))))
            }
            Err(e) => {
                self.table.delete(fields)?;
                Ok(Some(Ok(Err(internal(e)))))
            }
        }
    }
}

impl types::HostRequestOptions for HttpView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<types::RequestOptions>> {
        let charge = self.charge(ENTRY_BYTES, "request options").map_err(trap)?;
        let options = types::HostRequestOptions::new(&mut self.inner())?;
        self.held.keep(options.rep(), charge);
        Ok(options)
    }

    fn connect_timeout(
        &mut self,
        options: Resource<types::RequestOptions>,
    ) -> wasmtime::Result<Option<types::Duration>> {
        types::HostRequestOptions::connect_timeout(&mut self.inner(), options)
    }

    fn set_connect_timeout(
        &mut self,
        options: Resource<types::RequestOptions>,
        duration: Option<types::Duration>,
    ) -> wasmtime::Result<Result<(), ()>> {
        types::HostRequestOptions::set_connect_timeout(&mut self.inner(), options, duration)
    }

    fn first_byte_timeout(
        &mut self,
        options: Resource<types::RequestOptions>,
    ) -> wasmtime::Result<Option<types::Duration>> {
        types::HostRequestOptions::first_byte_timeout(&mut self.inner(), options)
    }

    fn set_first_byte_timeout(
        &mut self,
        options: Resource<types::RequestOptions>,
        duration: Option<types::Duration>,
    ) -> wasmtime::Result<Result<(), ()>> {
        types::HostRequestOptions::set_first_byte_timeout(&mut self.inner(), options, duration)
    }

    fn between_bytes_timeout(
        &mut self,
        options: Resource<types::RequestOptions>,
    ) -> wasmtime::Result<Option<types::Duration>> {
        types::HostRequestOptions::between_bytes_timeout(&mut self.inner(), options)
    }

    fn set_between_bytes_timeout(
        &mut self,
        options: Resource<types::RequestOptions>,
        duration: Option<types::Duration>,
    ) -> wasmtime::Result<Result<(), ()>> {
        types::HostRequestOptions::set_between_bytes_timeout(&mut self.inner(), options, duration)
    }

    fn drop(&mut self, options: Resource<types::RequestOptions>) -> wasmtime::Result<()> {
        let rep = options.rep();
        types::HostRequestOptions::drop(&mut self.inner(), options)?;
        self.held.release(rep);
        Ok(())
    }
}

// A plugin never receives an incoming request or a response outparam (it
// exports no HTTP handler): forwarded as they are.

impl types::HostIncomingRequest for HttpView<'_> {
    fn method(
        &mut self,
        request: Resource<HostIncomingRequest>,
    ) -> wasmtime::Result<types::Method> {
        types::HostIncomingRequest::method(&mut self.inner(), request)
    }

    fn path_with_query(
        &mut self,
        request: Resource<HostIncomingRequest>,
    ) -> wasmtime::Result<Option<String>> {
        types::HostIncomingRequest::path_with_query(&mut self.inner(), request)
    }

    fn scheme(
        &mut self,
        request: Resource<HostIncomingRequest>,
    ) -> wasmtime::Result<Option<types::Scheme>> {
        types::HostIncomingRequest::scheme(&mut self.inner(), request)
    }

    fn authority(
        &mut self,
        request: Resource<HostIncomingRequest>,
    ) -> wasmtime::Result<Option<String>> {
        types::HostIncomingRequest::authority(&mut self.inner(), request)
    }

    fn headers(
        &mut self,
        request: Resource<HostIncomingRequest>,
    ) -> wasmtime::Result<Resource<FieldMap>> {
        types::HostIncomingRequest::headers(&mut self.inner(), request)
    }

    fn consume(
        &mut self,
        request: Resource<HostIncomingRequest>,
    ) -> wasmtime::Result<Result<Resource<HostIncomingBody>, ()>> {
        types::HostIncomingRequest::consume(&mut self.inner(), request)
    }

    fn drop(&mut self, request: Resource<HostIncomingRequest>) -> wasmtime::Result<()> {
        types::HostIncomingRequest::drop(&mut self.inner(), request)
    }
}

impl types::HostResponseOutparam for HttpView<'_> {
    fn drop(&mut self, outparam: Resource<HostResponseOutparam>) -> wasmtime::Result<()> {
        types::HostResponseOutparam::drop(&mut self.inner(), outparam)
    }

    fn set(
        &mut self,
        outparam: Resource<HostResponseOutparam>,
        response: Result<Resource<HostOutgoingResponse>, types::ErrorCode>,
    ) -> wasmtime::Result<()> {
        let rep = response.as_ref().ok().map(|r| r.rep());
        types::HostResponseOutparam::set(&mut self.inner(), outparam, response)?;
        if let Some(rep) = rep {
            self.held.release(rep);
        }
        Ok(())
    }

    fn send_informational(
        &mut self,
        outparam: Resource<HostResponseOutparam>,
        status: u16,
        headers: Resource<FieldMap>,
    ) -> HttpResult<()> {
        types::HostResponseOutparam::send_informational(
            &mut self.inner(),
            outparam,
            status,
            headers,
        )
    }
}
