//! Outbound requests and the decision a plugin returns.

use serde::Serialize;

use crate::bindings::fieldhook::plugin::types as wire;
use crate::{Header, PluginError};

/// An HTTP request: delivered by the host after `handle` returns (inside a
/// [`Decision::deliver`]), or sent at once with [`crate::http::send`].
///
/// Build it with [`Request::post`] and friends, then the chained methods:
///
/// ```
/// # use fieldhook_guest::Request;
/// let request = Request::post("https://books.example.com/v1/invoices")
///     .json(&serde_json::json!({ "external_id": "job_1" }))
///     .header("X-Source", "fieldhook")
///     .idempotency_key("accounting-sync:evt_1");
/// assert_eq!(request.header_value("content-type"), Some("application/json"));
/// ```
///
/// Builder mistakes (a URL that is not absolute `http`/`https`, a value that
/// cannot be serialized as JSON) do not panic: they are kept and reported as a
/// non-retryable [`PluginError`] when the request is delivered or sent.
/// Credentials are added by the host from the manifest, never by the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// HTTP method, upper case: `GET`, `POST`, ...
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Headers in the order they are sent.
    pub headers: Vec<Header>,
    /// Request body (empty for none).
    pub body: Vec<u8>,
    /// Sent as `Idempotency-Key`. For delivered requests the host derives
    /// one from the event id, plugin and request index when this is `None`.
    pub idempotency_key: Option<String>,
    error: Option<String>,
}

impl Request {
    /// A request with any method (`"PROPFIND"`), upper-cased.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        let url = url.into();
        let error = crate::http::split_url(&url).err();
        Request {
            method: method.into().to_ascii_uppercase(),
            url,
            headers: Vec::new(),
            body: Vec::new(),
            idempotency_key: None,
            error,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// Sets a header, replacing any header of the same name (names compare
    /// case-insensitively).
    pub fn header(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        let name = name.into();
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(&name));
        self.headers.push(Header {
            name,
            value: value.as_ref().to_vec(),
        });
        self
    }

    /// Adds a header, keeping any others of the same name.
    pub fn append_header(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.as_ref().to_vec(),
        });
        self
    }

    /// Sets the body as is.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON and `Content-Type: application/json`
    /// (unless a content type is already set).
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => self.body = body,
            Err(err) => {
                self.error
                    .get_or_insert(format!("body cannot be serialized as JSON: {err}"));
            }
        }
        if self.header_value("content-type").is_none() {
            self = self.header("Content-Type", "application/json");
        }
        self
    }

    /// Sets the idempotency key the receiver uses to drop duplicates, e.g.
    /// `format!("my-plugin:{}", event.id())`.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The first header called `name` (any case), when its value is UTF-8.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    /// The mistake made while building this request, if any.
    pub(crate) fn check(&self) -> Result<(), PluginError> {
        match &self.error {
            None => Ok(()),
            Some(err) => Err(PluginError::fatal(format!(
                "{} {}: {err}",
                self.method, self.url
            ))),
        }
    }

    fn into_wire(self) -> Result<wire::OutboundRequest, PluginError> {
        self.check()?;
        Ok(wire::OutboundRequest {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// What to do with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not for this plugin: nothing is recorded beyond the skip (what
    /// [`crate::Plugin::filter`] returning false means).
    Skip,
    /// Nothing to do; the reason is recorded with the job.
    Drop(String),
    /// Deliver these requests, each on its own with retries.
    Deliver(Vec<Request>),
}

impl Decision {
    /// Not for this plugin (decided after reading more than `filter` does).
    pub fn skip() -> Self {
        Decision::Skip
    }

    /// Nothing to do, for this reason.
    pub fn drop(reason: impl Into<String>) -> Self {
        Decision::Drop(reason.into())
    }

    /// Deliver these requests (`vec![...]`, `[request]`, an iterator).
    pub fn deliver(requests: impl IntoIterator<Item = Request>) -> Self {
        Decision::Deliver(requests.into_iter().collect())
    }

    /// The decision as the host receives it; fails on a request with a
    /// builder mistake.
    pub(crate) fn into_wire(self) -> Result<wire::Decision, PluginError> {
        Ok(match self {
            Decision::Skip => wire::Decision::Skip,
            Decision::Drop(reason) => wire::Decision::Drop(reason),
            Decision::Deliver(requests) => wire::Decision::Deliver(
                requests
                    .into_iter()
                    .map(Request::into_wire)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_sets_body_and_content_type_once() {
        let req = Request::post("https://a.example/x")
            .header("content-type", "application/vnd.api+json")
            .json(&serde_json::json!({"a": 1}));
        assert_eq!(req.body, br#"{"a":1}"#);
        assert_eq!(req.headers.len(), 1);
        assert_eq!(
            req.header_value("Content-Type"),
            Some("application/vnd.api+json")
        );
    }

    #[test]
    fn header_replaces_append_keeps() {
        let req = Request::get("http://a.example")
            .header("X-A", "1")
            .header("x-a", "2");
        assert_eq!(req.headers.len(), 1);
        assert_eq!(req.header_value("X-A"), Some("2"));
        let req = req.append_header("X-A", "3");
        assert_eq!(req.headers.len(), 2);
    }

    #[test]
    fn builder_mistakes_become_fatal_errors() {
        let bad_url = Decision::deliver([Request::post("ftp://a.example/x")]);
        let err = bad_url.into_wire().unwrap_err();
        assert!(!err.retryable);
        assert!(err.message.contains("ftp://a.example/x"), "{}", err.message);

        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1u8], 1);
        let bad_json = Decision::deliver([Request::post("https://a.example").json(&map)]);
        let err = bad_json.into_wire().unwrap_err();
        assert!(err.message.contains("JSON"), "{}", err.message);
    }

    #[test]
    fn wire_form_keeps_everything() {
        let wire = Decision::deliver(vec![
            Request::new("post", "https://a.example/x?y=1")
                .body("hi")
                .idempotency_key("k"),
        ])
        .into_wire()
        .unwrap();
        let wire::Decision::Deliver(requests) = wire else {
            panic!("not deliver")
        };
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].body, b"hi");
        assert_eq!(requests[0].idempotency_key.as_deref(), Some("k"));
    }
}
