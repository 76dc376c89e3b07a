//! The one form of a request path that grants are checked against, and
//! that is then sent.
//!
//! Servers disagree on what a path means: one decodes `%2e` before it
//! removes dot segments, another treats `\` as `/`, a third decodes `%2f`
//! into a separator. A grant checked against one reading and a server
//! applying another would let `/api/.%2e/internal` pass a `/api/` prefix.
//! So the host settles the path first and sends exactly what it checked:
//!
//! 1. percent-encoded unreserved characters (letters, digits, `-._~`) are
//!    decoded, other escapes are kept with upper-case hex (RFC 3986 6.2.2);
//! 2. dot segments are removed (RFC 3986 5.2.4);
//! 3. a backslash, an encoded slash or backslash, a malformed escape or a
//!    control character refuses the request: no reading of those is safe.

/// Why a path cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path `{path}` is refused: {reason}")]
pub struct PathRefused {
    /// The path as given.
    pub path: String,
    /// What in it cannot be checked safely.
    pub reason: &'static str,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical form of `raw`, a request path without query (`""` is
/// `/`).
pub fn canonical_path(raw: &str) -> Result<String, PathRefused> {
    let refuse = |reason| PathRefused {
        path: raw.to_owned(),
        reason,
    };
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(refuse("a backslash is a separator to some servers")),
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(refuse("`%` must start a two-digit hex escape"));
                };
                let c = hi * 16 + lo;
                match c {
                    b'/' | b'\\' => {
                        return Err(refuse(
                            "an encoded slash or backslash is a separator to some servers",
                        ));
                    }
                    c if unreserved(c) => decoded.push(char::from(c)),
                    c if c < 0x20 || c == 0x7f => {
                        return Err(refuse("control characters are not allowed"));
                    }
                    c => {
                        decoded.push('%');
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(c >> 4)]));
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(c & 15)]));
                    }
                }
                i += 3;
            }
            b if b < 0x20 || b == 0x7f => {
                return Err(refuse("control characters are not allowed"));
            }
            _ => {
                // Copy the whole UTF-8 sequence (a `&str` is valid UTF-8).
                let len = raw[i..].chars().next().map_or(1, char::len_utf8);
                decoded.push_str(&raw[i..i + len]);
                i += len;
            }
        }
    }
    if decoded.is_empty() {
        return Ok("/".into());
    }
    if !decoded.starts_with('/') {
        return Err(refuse("a request path starts with `/`"));
    }
    Ok(remove_dot_segments(&decoded))
}

/// RFC 3986 5.2.4, on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len().saturating_sub(1);
    // A path ending in a dot segment keeps its trailing slash.
    let mut trailing_slash = false;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = n == last,
            ".." => {
                out.pop();
                trailing_slash = n == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if trailing_slash || result.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        canonical_path(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn plain_paths_are_kept_as_they_are() {
        assert_eq!(ok("/api/v2/jobs"), "/api/v2/jobs");
        assert_eq!(ok("/api/"), "/api/");
        assert_eq!(ok(""), "/");
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/caf\u{e9}"), "/caf\u{e9}");
    }

    #[test]
    fn dot_segments_are_removed_before_the_grant_sees_the_path() {
        assert_eq!(ok("/api/../internal"), "/internal");
        assert_eq!(ok("/api/./jobs"), "/api/jobs");
        assert_eq!(ok("/api/jobs/.."), "/api/");
        assert_eq!(ok("/../../etc"), "/etc");
        assert_eq!(ok("/api/jobs/."), "/api/jobs/");
    }

    #[test]
    fn encoded_dots_are_dots() {
        assert_eq!(ok("/api/.%2e/internal"), "/internal");
        assert_eq!(ok("/api/%2e./internal"), "/internal");
        assert_eq!(ok("/api/%2E%2E/internal"), "/internal");
        assert_eq!(ok("/api/%2e/jobs"), "/api/jobs");
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(ok("/%61pi/%7Ejobs"), "/api/~jobs");
        assert_eq!(ok("/a%3fb"), "/a%3Fb");
    }

    #[test]
    fn separators_no_server_agrees_on_are_refused() {
        for raw in [
            "/api/..\\internal",
            "/api\\..\\internal",
            "/api/%2e%2e%2finternal",
            "/api/..%2Finternal",
            "/api/..%5cinternal",
            "/api/%",
            "/api/%zz",
            "/api/%0a",
            "/api/\u{7}",
        ] {
            assert!(canonical_path(raw).is_err(), "{raw} must be refused");
        }
    }

    #[test]
    fn a_refusal_says_what_is_wrong() {
        let e = canonical_path("/api/..\\x").unwrap_err().to_string();
        assert!(e.contains("backslash"), "{e}");
    }
}
