//! Per-destination rate limit: a token bucket per `host:port`, shared by
//! every plugin and by deliveries, so the daemon as a whole stays inside
//! what a vendor API allows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token buckets by destination.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_sec` requests per second on average, `burst` at once.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec: per_sec.max(0.001),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `destination`; returns how long to wait first
    /// (zero when one was available).
    pub fn reserve(&self, destination: &str) -> Duration {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets
            .entry(destination.to_owned())
            .or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_sec).min(self.burst);
        *last = now;
        *tokens -= 1.0;
        if *tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-*tokens / self.per_sec)
        }
    }

    /// Waits for a token for `destination`.
    pub async fn acquire(&self, destination: &str) {
        let wait = self.reserve(destination);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_are_spaced_per_destination() {
        let r = RateLimiter::new(10.0, 3);
        for _ in 0..3 {
            assert_eq!(r.reserve("api.example.com:443"), Duration::ZERO);
        }
        let wait = r.reserve("api.example.com:443");
        assert!(
            wait > Duration::from_millis(80) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another destination has its own bucket.
        assert_eq!(r.reserve("other.example.com:443"), Duration::ZERO);
    }
}
