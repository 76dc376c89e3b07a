//! Text a plugin supplies (log messages, error messages, drop reasons, URLs
//! it returns), made safe to write into the daemon's log: one line, no
//! terminal control, bounded.
//!
//! A newline in a plugin's message would start a line that looks like the
//! daemon's own, a carriage return or an ANSI escape could rewrite what a
//! terminal shows. [`escape_controls`] writes every such character as a
//! visible escape instead (`\n`, `\r`, `\t`, `\u{1b}`): C0 and C1 controls,
//! DEL, the Unicode line and paragraph separators, and the bidirectional
//! overrides that reorder what is displayed.
//!
//! ```
//! use fieldhook_core::text::{cut, escape_controls, one_line};
//!
//! assert_eq!(
//!     escape_controls("done\nINFO fieldhook::admin: admin token accepted"),
//!     "done\\nINFO fieldhook::admin: admin token accepted"
//! );
//! assert_eq!(escape_controls("\u{1b}[2Jcleared"), "\\u{1b}[2Jcleared");
//! assert_eq!(one_line("abcdefgh", 4), "abcd… (4 more bytes)");
//! assert_eq!(cut("two\nlines", 100), "two\nlines");
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a log line as it is.
pub fn is_unsafe_in_log(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
                | '\u{2066}'..='\u{2069}' // bidi isolates
        )
}

/// `s` with every character [`is_unsafe_in_log`] written as an escape;
/// borrowed when there is none.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_in_log) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().saturating_add(16));
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// [`escape_controls`], cut after at most `max_bytes` bytes (on a character
/// boundary, escapes never split) with a note of how many bytes of `s` were
/// left out.
pub fn one_line(s: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_bytes).saturating_add(24));
    let mut escaped = String::new();
    for (i, c) in s.char_indices() {
        escaped.clear();
        push_escaped(&mut escaped, c);
        if out.len().saturating_add(escaped.len()) > max_bytes {
            let left = s.len().saturating_sub(i);
            let _ = write!(out, "… ({left} more bytes)");
            return out;
        }
        out.push_str(&escaped);
    }
    out
}

/// `s` cut after at most `max_bytes` bytes (on a character boundary), with
/// a note of how many bytes were left out; borrowed when it fits.
pub fn cut(s: &str, max_bytes: usize) -> Cow<'_, str> {
    if s.len() <= max_bytes {
        return Cow::Borrowed(s);
    }
    let end = (0..=max_bytes)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    let left = s.len().saturating_sub(end);
    Cow::Owned(format!(
        "{}… ({left} more bytes)",
        s.get(..end).unwrap_or("")
    ))
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_unsafe_in_log(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_cannot_start_a_line_that_looks_like_the_daemons_own() {
        let forged = "ok\n2026-12-01T10:00:00Z  INFO fieldhook::admin: admin token accepted";
        let safe = escape_controls(forged);
        assert!(!safe.contains('\n'));
        assert_eq!(
            safe,
            "ok\\n2026-12-01T10:00:00Z  INFO fieldhook::admin: admin token accepted"
        );
    }

    #[test]
    fn carriage_returns_ansi_escapes_and_other_controls_are_written_as_escapes() {
        assert_eq!(escape_controls("a\rb\tc"), "a\\rb\\tc");
        assert_eq!(escape_controls("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape_controls("nul\0del\u{7f}"), "nul\\u{0}del\\u{7f}");
        // C1 controls (CSI, NEL) and the Unicode line separator.
        assert_eq!(escape_controls("\u{9b}2J\u{85}x"), "\\u{9b}2J\\u{85}x");
        assert_eq!(escape_controls("a\u{2028}b"), "a\\u{2028}b");
        // Bidirectional overrides reorder what a terminal shows.
        assert_eq!(escape_controls("\u{202e}txt"), "\\u{202e}txt");
    }

    #[test]
    fn ordinary_text_is_kept_as_it_is_without_a_copy() {
        let s = "job 42 done: café, 東京, \"quoted\" \\ backslash";
        assert!(matches!(escape_controls(s), Cow::Borrowed(x) if x == s));
    }

    #[test]
    fn cut_keeps_text_that_fits_and_cuts_the_rest_on_a_character_boundary() {
        assert!(matches!(cut("a\nb", 3), Cow::Borrowed("a\nb")));
        assert_eq!(cut("ééé", 3), "é… (4 more bytes)");
    }

    #[test]
    fn one_line_cuts_on_a_character_boundary_and_says_how_much_was_left_out() {
        assert_eq!(one_line("short", 100), "short");
        assert_eq!(one_line("ééé", 3), "é… (4 more bytes)");
        // An escape is never split.
        assert_eq!(one_line("ab\ncd", 3), "ab… (3 more bytes)");
        assert_eq!(one_line("ab\ncd", 4), "ab\\n… (2 more bytes)");
    }
}
