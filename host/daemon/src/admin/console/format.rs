//! How the console shows times, headers, bodies and URLs.

/// `2026-11-20 15:04:05` (UTC) for Unix ms.
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Unix ms for a `datetime-local` value (`2026-11-20T15:04`, seconds
/// optional), read as UTC; `None` when it is not one.
pub fn parse_time(text: &str) -> Option<u64> {
    let (date, clock) = text.trim().split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, d) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut clock = clock.splitn(3, ':');
    let h: u64 = clock.next()?.parse().ok()?;
    let min: u64 = clock.next()?.parse().ok()?;
    let s: u64 = match clock.next() {
        Some(s) => s.split('.').next()?.parse().ok()?,
        None => 0,
    };
    if h > 23 || min > 59 || s > 59 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(((days * 86_400) + h * 3600 + min * 60 + s) * 1000)
}

/// The `datetime-local` value for Unix ms.
pub fn time_input(ms: u64) -> String {
    time(ms).replacen(' ', "T", 1)
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether a header carries a credential or a signature: its value is not
/// shown.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "signature",
        "token",
        "secret",
        "password",
    ]
    .iter()
    .any(|s| name.contains(s))
        || name.replace(['-', '_'], "").contains("apikey")
}

/// A header's value as shown: masked when secret.
pub fn header_value(name: &str, value: &[u8]) -> String {
    if is_secret_header(name) {
        format!("•••••• (hidden, {} bytes)", value.len())
    } else {
        String::from_utf8_lossy(value).into_owned()
    }
}

/// A body as shown: JSON indented, anything else as text.
pub fn body(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

/// A URL without its query: API keys travel there.
pub fn url_without_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_print_as_utc() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_795_532_645_000), "2026-11-24 15:04:05");
        assert_eq!(parse_time("2026-11-24T15:04:05"), Some(1_795_532_645_000));
        assert_eq!(parse_time("2026-11-24T15:04"), Some(1_795_532_640_000));
        assert_eq!(time_input(1_795_532_645_000), "2026-11-24T15:04:05");
        assert_eq!(parse_time("2024-02-29T00:00"), Some(1_709_164_800_000));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00",
            "2026-01-01T25:00",
            "2026-01-01",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn credentials_and_signatures_are_masked_and_other_headers_shown() {
        for secret in [
            "Authorization",
            "cookie",
            "X-Hub-Signature-256",
            "api-signature",
            "x-webhook-token",
            "X-Api-Key",
            "apikey",
            "x-client-secret",
        ] {
            assert!(is_secret_header(secret), "{secret}");
            assert!(header_value(secret, b"abc").starts_with("••••••"));
        }
        for plain in [
            "content-type",
            "user-agent",
            "api-timestamp",
            "x-request-id",
        ] {
            assert!(!is_secret_header(plain), "{plain}");
        }
        assert_eq!(header_value("content-type", b"text/plain"), "text/plain");
    }

    #[test]
    fn json_bodies_are_indented_and_urls_lose_their_query() {
        assert_eq!(body(br#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(body(b"<x>"), "<x>");
        assert_eq!(url_without_query("https://a/b?key=s3cret"), "https://a/b?…");
        assert_eq!(url_without_query("https://a/b"), "https://a/b");
    }
}
