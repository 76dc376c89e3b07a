//! A small blocking HTTP client over the imported `wasi:http/outgoing-handler`,
//! for fetching the record behind a thin webhook during `handle`.
//!
//! ```no_run
//! # fn f(event: fieldhook_guest::Event) -> Result<(), fieldhook_guest::PluginError> {
//! use fieldhook_guest::http;
//!
//! let url = event.entity().and_then(|e| e.url.clone()).unwrap_or_default();
//! let job: serde_json::Value = http::get(&url)?.error_for_status()?.json()?;
//! # Ok(()) }
//! ```
//!
//! The host checks every request against the manifest's grants and adds
//! credentials itself; a denied request is a non-retryable error. Transport
//! failures (timeouts, refused connections) are retryable.

use serde::de::DeserializeOwned;

use crate::{Header, PluginError, Request};

/// Largest response body [`send`] and [`get`] read: 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The URL that was requested.
    pub url: String,
    /// Status code.
    pub status: u16,
    /// Response headers as received.
    pub headers: Vec<Header>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response unchanged when the status is 2xx; otherwise an error,
    /// retryable for 408, 425, 429 and 5xx, non-retryable for the rest.
    pub fn error_for_status(self) -> Result<Self, PluginError> {
        if self.is_success() {
            return Ok(self);
        }
        let message = format!("{} answered HTTP {}", self.url, self.status);
        Err(match self.status {
            408 | 425 | 429 | 500..=599 => PluginError::retry(message),
            _ => PluginError::fatal(message),
        })
    }

    /// The first header called `name` (any case), when its value is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    /// The body as UTF-8 text; a non-retryable error when it is not.
    pub fn text(&self) -> Result<&str, PluginError> {
        std::str::from_utf8(&self.body).map_err(|err| {
            PluginError::fatal(format!("{}: response body is not UTF-8: {err}", self.url))
        })
    }

    /// The body deserialized from JSON; a non-retryable error when it is not
    /// JSON or not the shape `T` expects.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.body)
            .map_err(|err| PluginError::fatal(format!("{}: response body: {err}", self.url)))
    }
}

/// `GET url`, blocking until the whole response is read.
pub fn get(url: &str) -> Result<Response, PluginError> {
    send(&Request::get(url))
}

/// Sends `request` now and reads the whole response (at most
/// [`DEFAULT_MAX_BODY_BYTES`]). Its idempotency key, if any, is sent as
/// `Idempotency-Key`. Any status is `Ok`: see [`Response::error_for_status`].
pub fn send(request: &Request) -> Result<Response, PluginError> {
    send_with_limit(request, DEFAULT_MAX_BODY_BYTES)
}

/// [`send`] with another cap on the response body; a larger body is a
/// non-retryable error.
pub fn send_with_limit(request: &Request, max_body_bytes: usize) -> Result<Response, PluginError> {
    request.check()?;
    #[cfg(target_arch = "wasm32")]
    return wasi::send(request, max_body_bytes);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = max_body_bytes;
        Err(PluginError::fatal(format!(
            "{} {}: outbound HTTP is only available inside the fieldhook host",
            request.method, request.url
        )))
    }
}

/// Splits an absolute `http`/`https` URL into scheme, authority and
/// path-with-query (the fragment is dropped).
pub(crate) fn split_url(url: &str) -> Result<(&str, &str, String), String> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
        .ok_or_else(|| "the URL must be absolute and start with http:// or https://".to_string())?;
    let rest = rest.split('#').next().unwrap_or_default();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains(|c: char| c.is_whitespace()) {
        return Err("the URL has no valid host".to_string());
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok((scheme, authority, path))
}

#[cfg(target_arch = "wasm32")]
mod wasi {
    use super::{Response, split_url};
    use crate::bindings::wasi::http::outgoing_handler;
    use crate::bindings::wasi::http::types::{
        ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
        http_error_code,
    };
    use crate::bindings::wasi::io::streams::StreamError;
    use crate::{Header, PluginError, Request};

    /// `blocking-write-and-flush` takes at most 4096 bytes per call.
    const WRITE_CHUNK: usize = 4096;
    const READ_CHUNK: u64 = 64 * 1024;

    pub(super) fn send(request: &Request, max_body_bytes: usize) -> Result<Response, PluginError> {
        let what = format!("{} {}", request.method, request.url);
        let fatal = |detail: &str| PluginError::fatal(format!("{what}: {detail}"));

        let (scheme, authority, path) = split_url(&request.url).map_err(|e| fatal(&e))?;
        let mut headers: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        if let Some(key) = &request.idempotency_key {
            headers.push(("Idempotency-Key".into(), key.clone().into_bytes()));
        }
        if !request.body.is_empty() && request.header_value("content-length").is_none() {
            headers.push((
                "Content-Length".into(),
                request.body.len().to_string().into_bytes(),
            ));
        }
        let fields = Fields::from_list(&headers)
            .map_err(|e| fatal(&format!("headers rejected by the host: {e:?}")))?;

        let outgoing = OutgoingRequest::new(fields);
        let scheme = if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else {
            Scheme::Http
        };
        outgoing
            .set_method(&method(&request.method))
            .map_err(|()| fatal("invalid method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| fatal("invalid scheme"))?;
        outgoing
            .set_authority(Some(authority))
            .map_err(|()| fatal("invalid host"))?;
        outgoing
            .set_path_with_query(Some(&path))
            .map_err(|()| fatal("invalid path"))?;

        // Take the body before handing the request over, write it after: the
        // host streams it while the request is in flight.
        let body = match request.body.is_empty() {
            true => None,
            false => Some(
                outgoing
                    .body()
                    .map_err(|()| fatal("request body unavailable"))?,
            ),
        };
        let future = outgoing_handler::handle(outgoing, None).map_err(|e| error_code(&what, e))?;
        if let Some(body) = body {
            {
                let stream = body
                    .write()
                    .map_err(|()| fatal("request body unavailable"))?;
                for chunk in request.body.chunks(WRITE_CHUNK) {
                    stream
                        .blocking_write_and_flush(chunk)
                        .map_err(|e| stream_error(&what, e))?;
                }
            }
            OutgoingBody::finish(body, None).map_err(|e| error_code(&what, e))?;
        }

        let response = {
            let pollable = future.subscribe();
            pollable.block();
            drop(pollable);
            match future.get() {
                Some(Ok(Ok(response))) => response,
                Some(Ok(Err(code))) => return Err(error_code(&what, code)),
                Some(Err(())) | None => {
                    return Err(PluginError::retry(format!("{what}: no response")));
                }
            }
        };
        read_response(&what, &request.url, response, max_body_bytes)
    }

    fn read_response(
        what: &str,
        url: &str,
        response: IncomingResponse,
        max_body_bytes: usize,
    ) -> Result<Response, PluginError> {
        let status = response.status();
        let headers = {
            let fields = response.headers();
            let entries = fields.entries();
            drop(fields);
            entries
                .into_iter()
                .map(|(name, value)| Header { name, value })
                .collect()
        };
        let incoming = response
            .consume()
            .map_err(|()| PluginError::retry(format!("{what}: no body")))?;
        let mut body = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| PluginError::retry(format!("{what}: no body")))?;
            loop {
                match stream.blocking_read(READ_CHUNK) {
                    Ok(bytes) => body.extend_from_slice(&bytes),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(what, e)),
                }
                if body.len() > max_body_bytes {
                    return Err(PluginError::fatal(format!(
                        "{what}: response body is larger than {max_body_bytes} bytes"
                    )));
                }
            }
        }
        drop(incoming);
        drop(response);
        Ok(Response {
            url: url.to_string(),
            status,
            headers,
            body,
        })
    }

    fn method(method: &str) -> Method {
        match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        }
    }

    fn stream_error(what: &str, err: StreamError) -> PluginError {
        match err {
            StreamError::Closed => PluginError::retry(format!("{what}: connection closed early")),
            StreamError::LastOperationFailed(io) => match http_error_code(&io) {
                Some(code) => error_code(what, code),
                None => PluginError::retry(format!("{what}: {}", io.to_debug_string())),
            },
        }
    }

    /// Problems with the request itself or the manifest's grants never go
    /// away on their own; network trouble may.
    fn error_code(what: &str, code: ErrorCode) -> PluginError {
        let message = format!("{what}: {code:?}");
        match code {
            ErrorCode::HttpRequestDenied
            | ErrorCode::DestinationIpProhibited
            | ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestUriTooLong
            | ErrorCode::HttpRequestBodySize(_)
            | ErrorCode::HttpRequestHeaderSectionSize(_)
            | ErrorCode::HttpRequestHeaderSize(_)
            | ErrorCode::HttpResponseBodySize(_)
            | ErrorCode::LoopDetected
            | ErrorCode::ConfigurationError => PluginError::fatal(message),
            _ => PluginError::retry(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("https://api.example.com:8443/v1/jobs/1?expand=all#x").unwrap(),
            (
                "https",
                "api.example.com:8443",
                "/v1/jobs/1?expand=all".to_string()
            )
        );
        assert_eq!(
            split_url("http://a.example").unwrap(),
            ("http", "a.example", "/".to_string())
        );
        assert_eq!(split_url("http://a.example?q=1").unwrap().2, "/?q=1");
        assert!(split_url("ftp://a.example/").is_err());
        assert!(split_url("/relative").is_err());
        assert!(split_url("https:///nohost").is_err());
    }

    #[test]
    fn status_errors_retry_only_when_it_may_help() {
        let response = |status| Response {
            url: "u".into(),
            status,
            headers: vec![],
            body: vec![],
        };
        assert!(response(204).error_for_status().is_ok());
        assert!(response(503).error_for_status().unwrap_err().retryable);
        assert!(response(429).error_for_status().unwrap_err().retryable);
        assert!(!response(404).error_for_status().unwrap_err().retryable);
    }

    #[test]
    fn no_http_outside_the_host() {
        let err = get("https://a.example/").unwrap_err();
        assert!(!err.retryable);
    }
}
