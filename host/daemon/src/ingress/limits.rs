//! `[ingress]`: how long the webhook listener waits for a client, and how
//! many clients it serves at once.
//!
//! A client that opens a connection and sends its request slowly (or never)
//! holds a descriptor and a slot. Headers must arrive within
//! `header_read_timeout_ms` (the connection is closed otherwise, also when
//! it idles between keep-alive requests), the body within
//! `body_read_timeout_ms` once the headers are in (answered with the
//! vendor's timeout status, nothing stored), and at most `max_connections`
//! are served at once: further ones wait in the kernel's accept queue until
//! one closes. The daemon lowers `max_connections` when the open-file limit
//! cannot hold it next to the descriptors the rest of the daemon needs
//! ([`crate::open_files`]).

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::Deserialize;

/// `[ingress]` in the daemon config (defaults in [`Limits::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Webhook connections served at once.
    pub max_connections: NonZeroUsize,
    /// Time for a request's headers to arrive, ms.
    pub header_read_timeout_ms: NonZeroU64,
    /// Time for a request's body to arrive once its headers are in, ms.
    pub body_read_timeout_ms: NonZeroU64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            // Vendors send their headers in one packet; ten seconds is
            // room for a congested link, not for a client that stalls.
            header_read_timeout_ms: NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN),
            // A 1 MiB body at 35 kB/s; vendors give up sooner.
            body_read_timeout_ms: NonZeroU64::new(30_000).unwrap_or(NonZeroU64::MIN),
        }
    }
}

impl Limits {
    /// [`Limits::header_read_timeout_ms`] as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.get())
    }

    /// [`Limits::body_read_timeout_ms`] as a duration.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Section {
        #[serde(default)]
        ingress: Limits,
    }

    fn parse(text: &str) -> Result<Limits, toml::de::Error> {
        toml::from_str::<Section>(text).map(|s| s.ingress)
    }

    #[test]
    fn without_a_section_the_defaults_apply() {
        let l = parse("").unwrap();
        assert_eq!(l, Limits::default());
        assert_eq!(l.max_connections.get(), 1024);
        assert_eq!(l.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(l.body_read_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn a_zero_limit_is_refused_naming_the_key() {
        for key in [
            "max_connections",
            "header_read_timeout_ms",
            "body_read_timeout_ms",
        ] {
            let e = parse(&format!("[ingress]\n{key} = 0\n")).expect_err(key);
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn an_unknown_key_is_an_error() {
        assert!(parse("[ingress]\nmax_conections = 5\n").is_err());
    }
}
