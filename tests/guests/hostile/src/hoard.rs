//! Attempts to make the host hold memory, or write the daemon's log, on the
//! plugin's behalf: header maps held open, request bodies in flight at
//! once, floods of log lines and refused requests, forged log lines. Sizes
//! and counts come from `[config]` (`count`, `size`).

use fieldhook_guest::bindings::wasi::http::outgoing_handler;
use fieldhook_guest::bindings::wasi::http::types::{
    Fields, FutureIncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use fieldhook_guest::{Decision, PluginError, config, http, log};

fn number(key: &str, default: usize) -> usize {
    config::get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `count` header maps of one `size`-byte value each, all held until the
/// end (or each dropped at once with `hold = "false"`). A map the host
/// refuses traps the call.
pub fn header_maps() -> Result<Decision, PluginError> {
    let (count, size) = (number("count", 3000), number("size", 100 * 1024));
    let hold = config::get("hold").as_deref() != Some("false");
    let value = vec![b'v'; size];
    let mut held = Vec::with_capacity(if hold { count } else { 0 });
    for _ in 0..count {
        let fields = Fields::new();
        fields
            .append("x-hoard", &value)
            .map_err(|e| PluginError::fatal(format!("append refused: {e:?}")))?;
        if hold {
            held.push(fields);
        }
    }
    Ok(Decision::drop(format!("held {} header maps", held.len())))
}

/// `count` POSTs of `size` bytes to `url`, all sent before any answer is
/// read, so their bodies are in flight at once. Reports what got through
/// and the first error.
pub fn big_bodies(url: &str) -> Result<Decision, PluginError> {
    let (count, size) = (number("count", 10), number("size", 10 << 20));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| PluginError::fatal("url must be http://"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let chunk = vec![b'b'; 4096];
    let mut futures: Vec<FutureIncomingResponse> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_method(&Method::Post);
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(&format!("/{path}")));
        let Ok(body) = request.body() else {
            errors.push("no request body".into());
            continue;
        };
        match outgoing_handler::handle(request, None) {
            Ok(future) => futures.push(future),
            Err(code) => {
                errors.push(format!("{code:?}"));
                continue;
            }
        }
        let written = {
            let Ok(stream) = body.write() else {
                errors.push("no body stream".into());
                continue;
            };
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                if stream.blocking_write_and_flush(&chunk[..n]).is_err() {
                    break;
                }
                left -= n;
            }
            left == 0
        };
        if written {
            let _ = OutgoingBody::finish(body, None);
        }
    }
    let mut sent = 0;
    for future in futures {
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(response))) if response.status() == 200 => sent += 1,
            Some(Ok(Ok(response))) => errors.push(format!("HTTP {}", response.status())),
            Some(Ok(Err(code))) => errors.push(format!("{code:?}")),
            _ => errors.push("no response".into()),
        }
    }
    Ok(Decision::drop(format!(
        "sent={sent} failed={}: {}",
        errors.len(),
        errors.first().map_or("", String::as_str)
    )))
}

/// `count` lines of `size` bytes.
pub fn log_flood() -> Result<Decision, PluginError> {
    let (count, size) = (number("count", 800), number("size", 64 * 1024));
    let line = "z".repeat(size);
    for _ in 0..count {
        log::info(&line);
    }
    Ok(Decision::drop(format!("logged {count} lines")))
}

/// A message whose newline starts a line that looks like the daemon's own,
/// with a carriage return and an ANSI escape; an error message doing the
/// same.
pub fn log_forge() -> Result<Decision, PluginError> {
    log::warn(
        "job synced\n2026-12-01T10:00:00.000000Z  INFO fieldhook::admin: admin token accepted\r\u{1b}[2K",
    );
    Err(PluginError::fatal(
        "failed\n2026-12-01T10:00:00.000000Z  INFO fieldhook::admin: admin token accepted",
    ))
}

/// `count` requests to `url`, which no rule grants.
pub fn denied_flood(url: &str) -> Result<Decision, PluginError> {
    let count = number("count", 100_000);
    let mut denied = 0;
    for _ in 0..count {
        if http::get(url).is_err() {
            denied += 1;
        }
    }
    Ok(Decision::drop(format!("{denied} denied")))
}
