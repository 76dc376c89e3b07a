//! Shared verification helpers: HMAC over raw bytes, constant-time
//! comparison, signature decoding (hex, base64), the signed-timestamp
//! tolerance check, and strict header reading.
//!
//! Every vendor verifier goes through these, so the rules "compare in
//! constant time", "a header sent twice is malformed" and "a timestamp
//! outside the tolerance is refused" live in one place.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::Deserialize;
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use super::{Rejection, Secret};

/// Hash function of an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Algorithm {
    /// HMAC-SHA1 (20-byte digest).
    Sha1,
    /// HMAC-SHA256 (32-byte digest).
    Sha256,
    /// HMAC-SHA512 (64-byte digest).
    Sha512,
}

impl Algorithm {
    /// Name for humans: `HMAC-SHA256`.
    pub(super) fn label(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "HMAC-SHA1",
            Algorithm::Sha256 => "HMAC-SHA256",
            Algorithm::Sha512 => "HMAC-SHA512",
        }
    }

    /// HMAC of the concatenation of `parts`, keyed by `key`. The parts are fed
    /// one after the other, so `{timestamp}.{body}` is never copied into a new
    /// buffer.
    pub(super) fn mac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Algorithm::Sha1 => mac_with::<Hmac<sha1::Sha1>>(key, parts),
            Algorithm::Sha256 => mac_with::<Hmac<sha2::Sha256>>(key, parts),
            Algorithm::Sha512 => mac_with::<Hmac<sha2::Sha512>>(key, parts),
        }
    }
}

fn mac_with<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length; an error here is impossible, and an
    // empty result never matches anything (see `ct_eq`).
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA256, the most common case.
pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    Algorithm::Sha256.mac(key, parts)
}

/// Constant-time equality of two MACs. Empty values never match, so a
/// decoding accident can never turn into "equal".
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Constant-time equality of a presented credential (URL token, API key,
/// password) and a configured secret. Both are hashed first, so neither the
/// content nor the length of the secret leaks through timing.
pub(super) fn ct_eq_secret(presented: &[u8], secret: &[u8]) -> bool {
    let a = sha2::Sha256::digest(presented);
    let b = sha2::Sha256::digest(secret);
    !secret.is_empty() && bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// Index (0-based) of the first secret whose credential equals `presented`.
/// Every secret is compared, so the time taken does not reveal which matched.
pub(super) fn matching_secret(presented: &[u8], secrets: &[Secret]) -> Option<usize> {
    let mut found = None;
    for (i, secret) in secrets.iter().enumerate() {
        if ct_eq_secret(presented, secret.expose()) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Encoding {
    /// Hex digits, either case.
    Hex,
    /// Base64, standard or URL-safe alphabet, padded or not.
    Base64,
}

impl Encoding {
    /// Name for humans.
    pub(super) fn label(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }

    /// Decode `text`; `None` when it is not valid in this encoding.
    pub(super) fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Encoding::Hex => hex::decode(text).ok(),
            Encoding::Base64 => decode_base64(text),
        }
    }

    /// Encode `bytes` (used only to show the expected value in `explain`).
    pub(super) fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Hex => hex::encode(bytes),
            Encoding::Base64 => STANDARD.encode(bytes),
        }
    }
}

/// Base64 in any of the common spellings: standard or URL-safe alphabet,
/// with or without padding.
pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .into_iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Parse a signed Unix timestamp (seconds, ASCII digits only).
pub(super) fn parse_timestamp(header: &str, value: &str) -> Result<i64, Rejection> {
    let malformed = |why: String| Rejection::MalformedHeader {
        name: header.to_owned(),
        why,
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!(
            "`{}` is not Unix seconds (digits only)",
            shorten(value, 40)
        )));
    }
    value
        .parse::<i64>()
        .map_err(|_| malformed(format!("`{}` is out of range", shorten(value, 40))))
}

/// Accept `timestamp` when it is within `tolerance` seconds of `now`, either
/// way (`0` disables the check). Returns the skew `now - timestamp`.
pub(super) fn check_tolerance(timestamp: i64, now: i64, tolerance: u64) -> Result<i64, Rejection> {
    let skew = now.saturating_sub(timestamp);
    if tolerance != 0 && skew.unsigned_abs() > tolerance {
        return Err(Rejection::StaleTimestamp {
            timestamp,
            skew,
            tolerance,
        });
    }
    Ok(skew)
}

/// Human description of a skew: `5s old`, `120s in the future`.
pub(super) fn describe_skew(skew: i64) -> String {
    match skew {
        0 => "exactly now".to_owned(),
        s if s > 0 => format!("{s}s old"),
        s => format!("{}s in the future", s.unsigned_abs()),
    }
}

/// Read a header that must appear at most once.
///
/// - absent: `Ok(None)`;
/// - present once: its value, surrounding whitespace trimmed;
/// - present several times, or not visible ASCII: `MalformedHeader`.
pub(super) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Rejection> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let extra = values.count();
    if extra > 0 {
        return Err(Rejection::MalformedHeader {
            name: name.to_owned(),
            why: format!("sent {} times; expected exactly once", extra + 1),
        });
    }
    let text = first.to_str().map_err(|_| Rejection::MalformedHeader {
        name: name.to_owned(),
        why: "not visible ASCII".to_owned(),
    })?;
    Ok(Some(text.trim()))
}

/// Read a header that must appear exactly once and not be empty.
pub(super) fn required_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<&'h str, Rejection> {
    match header(headers, name)? {
        None => Err(Rejection::MissingHeader(name.to_owned())),
        Some("") => Err(Rejection::MalformedHeader {
            name: name.to_owned(),
            why: "empty".to_owned(),
        }),
        Some(value) => Ok(value),
    }
}

/// Cut `text` to at most `max` characters for messages (adds `...`).
pub(super) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
    }
}

/// Describe which secret matched: `secret #1 (current)`.
pub(super) fn secret_label(index: usize) -> String {
    match index {
        0 => "secret #1 (current)".to_owned(),
        1 => "secret #2 (previous)".to_owned(),
        n => format!("secret #{}", n + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    // Independent values: `printf %s 'hello' | openssl dgst -<alg> -hmac key`.
    #[test]
    fn hmac_matches_known_answers_for_every_algorithm() {
        assert_eq!(
            hex::encode(Algorithm::Sha1.mac(b"key", &[b"hel", b"lo"])),
            "b34ceac4516ff23a143e61d79d0fa7a4fbe5f266"
        );
        assert_eq!(
            hex::encode(Algorithm::Sha256.mac(b"key", &[b"hello"])),
            "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
        );
        assert_eq!(
            hex::encode(Algorithm::Sha512.mac(b"key", &[b"he", b"", b"llo"])),
            "ff06ab36757777815c008d32c8e14a705b4e7bf310351a06a23b612dc4c7433e\
             7757d20525a5593b71020ea2ee162d2311b247e9855862b270122419652c0c92"
        );
    }

    #[test]
    fn empty_macs_never_compare_equal() {
        assert!(!ct_eq(b"", b""));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"abc", b"abc"));
    }

    #[test]
    fn secret_comparison_needs_exact_bytes_and_rejects_empty_secrets() {
        assert!(ct_eq_secret(b"token", b"token"));
        assert!(!ct_eq_secret(b"token", b"token2"));
        assert!(!ct_eq_secret(b"", b""));
        let secrets = [Secret::new(b"new".to_vec()), Secret::new(b"old".to_vec())];
        assert_eq!(matching_secret(b"old", &secrets), Some(1));
        assert_eq!(matching_secret(b"nope", &secrets), None);
    }

    #[test]
    fn base64_is_accepted_in_every_common_spelling() {
        let want = Some(vec![0xfb, 0xff, 0xfe]);
        assert_eq!(decode_base64("+//+"), want);
        assert_eq!(decode_base64("-__-"), want);
        assert_eq!(decode_base64("YQ=="), Some(b"a".to_vec()));
        assert_eq!(decode_base64("YQ"), Some(b"a".to_vec()));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn tolerance_accepts_both_directions_inside_the_window_and_zero_disables_it() {
        assert_eq!(check_tolerance(1000, 1300, 300), Ok(300));
        assert_eq!(check_tolerance(1300, 1000, 300), Ok(-300));
        assert!(check_tolerance(1000, 1301, 300).is_err());
        assert!(check_tolerance(1301, 1000, 300).is_err());
        assert_eq!(check_tolerance(0, 1_000_000, 0), Ok(1_000_000));
        // Extreme values saturate instead of overflowing.
        assert!(check_tolerance(i64::MIN, i64::MAX, 300).is_err());
    }

    #[test]
    fn timestamps_must_be_plain_digits() {
        assert_eq!(parse_timestamp("t", "1614265330"), Ok(1614265330));
        for bad in ["", "-5", "+5", "1.5", "12a", "99999999999999999999"] {
            assert!(parse_timestamp("t", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_header_sent_twice_is_malformed_and_an_absent_one_is_missing() {
        let mut headers = HeaderMap::new();
        headers.append("x-sig", HeaderValue::from_static("a"));
        headers.append("x-sig", HeaderValue::from_static("b"));
        assert!(matches!(
            header(&headers, "X-Sig"),
            Err(Rejection::MalformedHeader { .. })
        ));
        assert_eq!(
            required_header(&headers, "X-Other"),
            Err(Rejection::MissingHeader("X-Other".into()))
        );
        headers.insert("x-empty", HeaderValue::from_static(""));
        assert!(matches!(
            required_header(&headers, "X-Empty"),
            Err(Rejection::MalformedHeader { .. })
        ));
    }

    #[test]
    fn header_lookup_ignores_case_and_trims() {
        let mut headers = HeaderMap::new();
        headers.insert("api-signature", HeaderValue::from_static("  abc "));
        assert_eq!(header(&headers, "Api-Signature"), Ok(Some("abc")));
    }

    #[test]
    fn non_ascii_header_values_are_malformed_not_a_panic() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-sig",
            HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes are allowed"),
        );
        assert!(matches!(
            header(&headers, "x-sig"),
            Err(Rejection::MalformedHeader { .. })
        ));
    }

    #[test]
    fn shorten_cuts_on_character_boundaries() {
        assert_eq!(shorten("ééééé", 2), "éé...");
        assert_eq!(shorten("abc", 5), "abc");
    }
}
