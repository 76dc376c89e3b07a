//! Per-destination delivery policy: retries, concurrency, rate limits and a
//! circuit breaker, so one failing or slow destination never stalls others.
//!
//! A destination is the scheme, host and port of a delivery URL. Each
//! `[[destinations]]` entry of the daemon config applies to one; the rest
//! use `[delivery]`'s retry settings and no limits. A delivery that may not
//! go now (concurrency full, rate exceeded, circuit open) is given back to
//! the queue for later without spending an attempt, and the worker moves on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::delivery::DeliverySettings;

/// Default consecutive failures that open a destination's circuit.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default time a circuit stays open before a probe, seconds.
pub const DEFAULT_BREAKER_OPEN_SECS: u64 = 30;
/// Longest backoff, ms.
const MAX_BACKOFF_MS: u64 = 300_000;

/// A status, or a class of statuses written `"5xx"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StatusMatch {
    /// One status.
    Code(u16),
    /// `"4xx"`, `"5xx"`, or a number as a string.
    Class(String),
}

impl StatusMatch {
    fn matches(&self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => *c == status,
            StatusMatch::Class(s) => match s.strip_suffix("xx") {
                Some(d) => d.parse::<u16>().is_ok_and(|d| status / 100 == d),
                None => s.parse::<u16>().is_ok_and(|c| c == status),
            },
        }
    }
}

/// One `[[destinations]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// `scheme://host[:port]` this entry applies to.
    #[serde(rename = "match")]
    pub matches: String,
    /// Most deliveries in flight at once.
    pub concurrency: Option<usize>,
    /// Most requests per second.
    pub rate_per_second: Option<f64>,
    /// Most requests per minute.
    pub rate_per_minute: Option<f64>,
    /// Attempts before dead-lettering.
    pub max_attempts: Option<u32>,
    /// Dead-letter once a delivery is older than this, seconds.
    pub max_age_secs: Option<u64>,
    /// Exponential backoff: first retry ceiling, ms (full jitter).
    pub retry_base_ms: Option<u64>,
    /// Exponential backoff: largest delay, ms.
    pub retry_max_ms: Option<u64>,
    /// Fixed delays instead of exponential backoff, ms: the n-th retry waits
    /// the n-th entry (the last one repeats).
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// Statuses that are retried (default 408, 425, 429, 5xx). Network
    /// errors and timeouts are always retried.
    pub retry_statuses: Option<Vec<StatusMatch>>,
    /// Consecutive failures that open the circuit (0 = never).
    pub breaker_failures: Option<u32>,
    /// How long the circuit stays open before one probe, seconds.
    pub breaker_open_secs: Option<u64>,
}

/// How retries are spaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backoff {
    /// Uniform in `[0, min(max, base * 2^(attempt-1))]` (full jitter).
    Exponential {
        /// First ceiling, ms.
        base_ms: u64,
        /// Cap, ms.
        max_ms: u64,
    },
    /// The n-th retry waits the n-th delay; the last repeats.
    Schedule(Vec<u64>),
}

impl Backoff {
    /// Delay after attempt `attempt` (1-based) failed.
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        match self {
            Backoff::Exponential { base_ms, max_ms } => {
                let ceiling = base_ms
                    .saturating_mul(1 << attempt.saturating_sub(1).min(20))
                    .min(*max_ms);
                rand::random_range(0..=ceiling)
            }
            Backoff::Schedule(s) => {
                let i = (attempt.saturating_sub(1) as usize).min(s.len().saturating_sub(1));
                s.get(i).copied().unwrap_or(0)
            }
        }
    }
}

/// The resolved policy of one destination.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Age after which a delivery is dead-lettered, ms.
    pub max_age_ms: Option<u64>,
    /// Retry spacing.
    pub backoff: Backoff,
    /// Statuses retried; `None` = the default set.
    pub retry_statuses: Option<Vec<StatusMatch>>,
    /// In-flight limit.
    pub concurrency: Option<usize>,
    /// Token buckets: (tokens per second, capacity).
    pub rates: Vec<(f64, f64)>,
    /// Consecutive failures that open the circuit; 0 disables it.
    pub breaker_failures: u32,
    /// Open time before a probe.
    pub breaker_open: Duration,
}

impl Policy {
    /// Whether an answer with this status is worth retrying.
    pub fn retries_status(&self, status: u16) -> bool {
        match &self.retry_statuses {
            Some(list) => list.iter().any(|m| m.matches(status)),
            None => crate::delivery::retryable_status(status),
        }
    }

    fn defaults(d: &DeliverySettings) -> Self {
        Self {
            max_attempts: d.max_attempts.max(1),
            max_age_ms: None,
            backoff: Backoff::Exponential {
                base_ms: d.retry_base_ms,
                max_ms: MAX_BACKOFF_MS,
            },
            retry_statuses: None,
            concurrency: None,
            rates: Vec::new(),
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_open: Duration::from_secs(DEFAULT_BREAKER_OPEN_SECS),
        }
    }

    fn from_config(c: &DestinationConfig, d: &DeliverySettings) -> Self {
        let base = Self::defaults(d);
        let backoff = match &c.retry_schedule_ms {
            Some(s) if !s.is_empty() => Backoff::Schedule(s.clone()),
            _ => Backoff::Exponential {
                base_ms: c.retry_base_ms.unwrap_or(d.retry_base_ms),
                max_ms: c.retry_max_ms.unwrap_or(MAX_BACKOFF_MS),
            },
        };
        let mut rates = Vec::new();
        if let Some(r) = c.rate_per_second.filter(|r| *r > 0.0) {
            rates.push((r, r.max(1.0)));
        }
        if let Some(r) = c.rate_per_minute.filter(|r| *r > 0.0) {
            // Capacity of one second's share keeps any 60 s window at the quota.
            rates.push((r / 60.0, (r / 60.0).max(1.0)));
        }
        Self {
            max_attempts: c.max_attempts.unwrap_or(base.max_attempts).max(1),
            max_age_ms: c.max_age_secs.map(|s| s.saturating_mul(1000)),
            backoff,
            retry_statuses: c.retry_statuses.clone(),
            concurrency: c.concurrency.filter(|c| *c > 0),
            rates,
            breaker_failures: c.breaker_failures.unwrap_or(base.breaker_failures),
            breaker_open: c
                .breaker_open_secs
                .map_or(base.breaker_open, Duration::from_secs),
        }
    }
}

/// One `[[plugin_retries]]` entry: how a plugin's failed jobs are retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRetryConfig {
    /// The plugin's name.
    pub plugin: String,
    /// Attempts before dead-lettering (default 3).
    pub max_attempts: Option<u32>,
    /// Dead-letter once a job is older than this, seconds.
    pub max_age_secs: Option<u64>,
    /// Exponential backoff: first retry ceiling, ms (full jitter).
    pub retry_base_ms: Option<u64>,
    /// Exponential backoff: largest delay, ms.
    pub retry_max_ms: Option<u64>,
    /// Fixed delays instead, ms; the last one repeats.
    pub retry_schedule_ms: Option<Vec<u64>>,
}

/// How one plugin's jobs are retried.
#[derive(Debug, Clone)]
pub struct JobPolicy {
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Age after which a job is dead-lettered, ms.
    pub max_age_ms: Option<u64>,
    /// Retry spacing.
    pub backoff: Backoff,
}

/// Job retry policies by plugin.
#[derive(Debug, Clone)]
pub struct JobPolicies {
    default: JobPolicy,
    by_plugin: HashMap<String, JobPolicy>,
}

impl JobPolicies {
    /// The default (3 attempts, exponential from `[delivery] retry_base_ms`)
    /// and the `[[plugin_retries]]` entries.
    pub fn new(default_attempts: u32, d: &DeliverySettings, list: &[PluginRetryConfig]) -> Self {
        let exp = |base: Option<u64>, max: Option<u64>| Backoff::Exponential {
            base_ms: base.unwrap_or(d.retry_base_ms),
            max_ms: max.unwrap_or(MAX_BACKOFF_MS),
        };
        Self {
            default: JobPolicy {
                max_attempts: default_attempts,
                max_age_ms: None,
                backoff: exp(None, None),
            },
            by_plugin: list
                .iter()
                .map(|c| {
                    let backoff = match &c.retry_schedule_ms {
                        Some(s) if !s.is_empty() => Backoff::Schedule(s.clone()),
                        _ => exp(c.retry_base_ms, c.retry_max_ms),
                    };
                    let policy = JobPolicy {
                        max_attempts: c.max_attempts.unwrap_or(default_attempts).max(1),
                        max_age_ms: c.max_age_secs.map(|s| s.saturating_mul(1000)),
                        backoff,
                    };
                    (c.plugin.clone(), policy)
                })
                .collect(),
        }
    }

    /// The policy for a plugin's jobs.
    pub fn get(&self, plugin: &str) -> &JobPolicy {
        self.by_plugin.get(plugin).unwrap_or(&self.default)
    }
}

/// `scheme://host:port` of a URL, lower-cased, the port made explicit;
/// `None` when the URL has no scheme or host.
pub fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.trim_end_matches('/').parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some(format!("{scheme}://{host}:{port}"))
}

/// A `[[destinations]]` entry that cannot be used, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationConfigError {
    /// `match` is not an origin.
    #[error(
        "destination match `{0}` must be scheme://host[:port], e.g. \"https://api.servicem8.com\""
    )]
    NotAnOrigin(String),
    /// Two entries match the same origin.
    #[error("destination `{0}` is configured twice")]
    Twice(String),
    /// A rate is zero, negative or not a number.
    #[error("destination `{0}`: rates must be positive")]
    BadRate(String),
}

/// Checks `[[destinations]]` entries; an error names the entry to fix.
pub fn validate(list: &[DestinationConfig]) -> Result<(), DestinationConfigError> {
    for c in list {
        let Some(origin) = origin_of(&c.matches) else {
            return Err(DestinationConfigError::NotAnOrigin(c.matches.clone()));
        };
        if list
            .iter()
            .filter(|o| origin_of(&o.matches).as_deref() == Some(&origin))
            .count()
            > 1
        {
            return Err(DestinationConfigError::Twice(origin));
        }
        let bad = |r: f64| !r.is_finite() || r <= 0.0;
        if c.rate_per_second.is_some_and(bad) || c.rate_per_minute.is_some_and(bad) {
            return Err(DestinationConfigError::BadRate(origin));
        }
    }
    Ok(())
}

#[derive(Debug)]
enum Breaker {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    buckets: Vec<(f64, Instant)>,
    breaker: Breaker,
    /// Next free slot for a deferred delivery. Each deferral takes the next
    /// slot, so a backlog of thousands comes back spread at the rate the
    /// destination can take, instead of all at once, again and again.
    cursor: Instant,
    /// Recent send latency, ms (moving average).
    latency_ms: f64,
}

/// A destination's circuit, for stats.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DestinationStatus {
    /// `scheme://host:port`.
    pub origin: String,
    /// Deliveries in flight.
    pub in_flight: usize,
    /// `closed`, `open` or `half-open`.
    pub circuit: &'static str,
}

/// The policies and live state of every destination.
#[derive(Debug)]
pub struct Destinations {
    /// Replaced whole when the configuration is reloaded.
    policies: std::sync::RwLock<Arc<Policies>>,
    state: Mutex<HashMap<String, State>>,
}

/// The policies of one configuration.
#[derive(Debug)]
struct Policies {
    default: Arc<Policy>,
    configured: HashMap<String, Arc<Policy>>,
}

impl Policies {
    fn new(delivery: &DeliverySettings, list: &[DestinationConfig]) -> Self {
        Self {
            default: Arc::new(Policy::defaults(delivery)),
            configured: list
                .iter()
                .filter_map(|c| {
                    Some((
                        origin_of(&c.matches)?,
                        Arc::new(Policy::from_config(c, delivery)),
                    ))
                })
                .collect(),
        }
    }
}

/// Why a delivery may not go now, and when to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The circuit is open.
    CircuitOpen(u64),
    /// Too many in flight.
    Busy(u64),
    /// Rate limit reached.
    Throttled(u64),
}

impl Wait {
    /// Milliseconds to wait.
    pub fn ms(self) -> u64 {
        match self {
            Wait::CircuitOpen(m) | Wait::Busy(m) | Wait::Throttled(m) => m,
        }
    }
}

/// Permission to send one delivery; releases its concurrency slot on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    owner: &'a Destinations,
    origin: String,
    recorded: bool,
    started: Instant,
}

impl Permit<'_> {
    /// Records how the send went: `failed` for network errors, timeouts and
    /// retryable statuses (the answers that say the destination is unwell).
    pub fn record(mut self, failed: bool) {
        self.recorded = true;
        let elapsed = self.started.elapsed();
        self.owner.record(&self.origin, failed, elapsed);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut map = self.owner.lock();
        if let Some(s) = map.get_mut(&self.origin) {
            s.in_flight = s.in_flight.saturating_sub(1);
            if !self.recorded
                && let Breaker::HalfOpen { probing } = &mut s.breaker
            {
                *probing = false;
            }
        }
    }
}

impl Destinations {
    /// Policies from `[delivery]` and `[[destinations]]`.
    pub fn new(delivery: &DeliverySettings, list: &[DestinationConfig]) -> Self {
        Self {
            policies: std::sync::RwLock::new(Arc::new(Policies::new(delivery, list))),
            state: Mutex::default(),
        }
    }

    /// Takes new policies (a reloaded configuration). Circuits and what is
    /// in flight carry over; rate buckets start full at the new rates.
    pub fn reconfigure(&self, delivery: &DeliverySettings, list: &[DestinationConfig]) {
        let policies = Arc::new(Policies::new(delivery, list));
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) = policies;
        let now = Instant::now();
        let mut map = self.lock();
        for (origin, s) in map.iter_mut() {
            let policy = self.policy(origin);
            s.buckets = policy.rates.iter().map(|(_, cap)| (*cap, now)).collect();
        }
    }

    /// The policy for an origin.
    pub fn policy(&self, origin: &str) -> Arc<Policy> {
        let policies = self.policies.read().unwrap_or_else(|p| p.into_inner());
        policies
            .configured
            .get(origin)
            .unwrap_or(&policies.default)
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit to send to `origin` now, or how long to wait.
    pub fn acquire(&self, origin: &str) -> Result<Permit<'_>, Wait> {
        self.acquire_at(origin, Instant::now())
    }

    fn acquire_at(&self, origin: &str, now: Instant) -> Result<Permit<'_>, Wait> {
        let policy = self.policy(origin);
        let mut map = self.lock();
        let s = map.entry(origin.to_owned()).or_insert_with(|| State {
            in_flight: 0,
            buckets: policy.rates.iter().map(|(_, cap)| (*cap, now)).collect(),
            breaker: Breaker::Closed { failures: 0 },
            cursor: now,
            latency_ms: 100.0,
        });
        // Spread deferrals: the wait is at least `base`, and each one takes
        // the next slot `spacing_ms` after the previous.
        let defer = |s: &mut State, base_ms: u64, spacing_ms: f64| {
            let slot = (now + Duration::from_millis(base_ms)).max(s.cursor);
            s.cursor = slot + Duration::from_secs_f64(spacing_ms.max(1.0) / 1000.0);
            (slot - now).as_millis() as u64 + 1
        };
        match s.breaker {
            Breaker::Open { until } if until > now => {
                let base = (until - now).as_millis() as u64;
                return Err(Wait::CircuitOpen(defer(s, base, 2.0)));
            }
            Breaker::Open { .. } => s.breaker = Breaker::HalfOpen { probing: false },
            Breaker::HalfOpen { probing: true } => {
                return Err(Wait::CircuitOpen(defer(s, 250, 2.0)));
            }
            _ => {}
        }
        if let Some(c) = policy.concurrency.filter(|c| s.in_flight >= *c) {
            let spacing = s.latency_ms / c as f64;
            return Err(Wait::Busy(defer(s, 20, spacing)));
        }
        let mut throttled = None;
        for ((rate, cap), (tokens, last)) in policy.rates.iter().zip(s.buckets.iter_mut()) {
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(*cap);
            *last = now;
            if *tokens < 1.0 {
                let ms = ((1.0 - *tokens) / rate * 1000.0).ceil() as u64;
                throttled = Some((ms.max(1), 1000.0 / rate));
            }
        }
        if let Some((base, spacing)) = throttled {
            return Err(Wait::Throttled(defer(s, base, spacing)));
        }
        for (tokens, _) in s.buckets.iter_mut() {
            *tokens -= 1.0;
        }
        if let Breaker::HalfOpen { probing } = &mut s.breaker {
            *probing = true;
        }
        s.in_flight += 1;
        Ok(Permit {
            owner: self,
            origin: origin.to_owned(),
            recorded: false,
            started: now,
        })
    }

    fn record(&self, origin: &str, failed: bool, elapsed: Duration) {
        let policy = self.policy(origin);
        let mut map = self.lock();
        let Some(s) = map.get_mut(origin) else { return };
        s.latency_ms = 0.8 * s.latency_ms + 0.2 * elapsed.as_secs_f64() * 1000.0;
        s.breaker = match (&s.breaker, failed) {
            (_, false) => Breaker::Closed { failures: 0 },
            (Breaker::HalfOpen { .. }, true) => {
                tracing::warn!(%origin, "probe failed; circuit open again");
                Breaker::Open {
                    until: Instant::now() + policy.breaker_open,
                }
            }
            (Breaker::Closed { failures }, true) => {
                let failures = failures + 1;
                if policy.breaker_failures > 0 && failures >= policy.breaker_failures {
                    tracing::warn!(%origin, failures, open_secs = policy.breaker_open.as_secs(), "circuit opened");
                    Breaker::Open {
                        until: Instant::now() + policy.breaker_open,
                    }
                } else {
                    Breaker::Closed { failures }
                }
            }
            (Breaker::Open { until }, true) => Breaker::Open { until: *until },
        };
    }

    /// Every destination seen so far.
    pub fn status(&self) -> Vec<DestinationStatus> {
        let mut out: Vec<_> = self
            .lock()
            .iter()
            .map(|(origin, s)| DestinationStatus {
                origin: origin.clone(),
                in_flight: s.in_flight,
                circuit: match s.breaker {
                    Breaker::Closed { .. } => "closed",
                    Breaker::Open { .. } => "open",
                    Breaker::HalfOpen { .. } => "half-open",
                },
            })
            .collect();
        out.sort_by(|a, b| a.origin.cmp(&b.origin));
        out
    }

    /// Every destination with its circuit and policy: those seen since
    /// start and those configured but not yet sent to.
    pub fn overview(&self) -> Vec<(DestinationStatus, Arc<Policy>)> {
        let mut out = self.status();
        let configured: Vec<String> = {
            let policies = self.policies.read().unwrap_or_else(|p| p.into_inner());
            policies.configured.keys().cloned().collect()
        };
        for origin in configured {
            if !out.iter().any(|s| s.origin == origin) {
                out.push(DestinationStatus {
                    origin,
                    in_flight: 0,
                    circuit: "closed",
                });
            }
        }
        out.sort_by(|a, b| a.origin.cmp(&b.origin));
        out.into_iter()
            .map(|s| {
                let policy = self.policy(&s.origin);
                (s, policy)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destinations(toml_text: &str) -> Destinations {
        #[derive(Deserialize)]
        struct T {
            destinations: Vec<DestinationConfig>,
        }
        let t: T = toml::from_str(toml_text).unwrap();
        validate(&t.destinations).unwrap();
        Destinations::new(&DeliverySettings::default(), &t.destinations)
    }

    const SM8: &str = "https://api.servicem8.com:443";

    #[test]
    fn a_destination_is_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://API.servicem8.com/api_1.0/job.json").as_deref(),
            Some(SM8)
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9000/x").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(origin_of("/relative"), None);
    }

    #[test]
    fn the_overview_lists_configured_destinations_before_any_delivery_with_their_policy() {
        let d = destinations(
            "[[destinations]]\nmatch = \"https://api.servicem8.com\"\nconcurrency = 2\n",
        );
        let seen = d.acquire("http://127.0.0.1:9000");
        drop(seen);
        let overview = d.overview();
        let origins: Vec<_> = overview.iter().map(|(s, _)| s.origin.as_str()).collect();
        assert_eq!(origins, ["http://127.0.0.1:9000", SM8]);
        assert_eq!(overview[1].0.circuit, "closed");
        assert_eq!(overview[1].1.concurrency, Some(2));
    }

    #[test]
    fn a_per_minute_rate_spaces_requests_and_other_destinations_are_unaffected() {
        let d = destinations(
            "[[destinations]]\nmatch = \"https://api.servicem8.com\"\nrate_per_minute = 180\n",
        );
        let now = Instant::now();
        let mut sent = 0;
        let mut first_wait = None;
        for _ in 0..10 {
            match d.acquire_at(SM8, now) {
                Ok(p) => {
                    p.record(false);
                    sent += 1;
                }
                Err(w) => {
                    first_wait.get_or_insert(w);
                }
            }
        }
        assert_eq!(sent, 3, "one second's share of 180/min");
        assert!(
            matches!(first_wait, Some(Wait::Throttled(ms)) if ms <= 335),
            "{first_wait:?}"
        );
        assert!(d.acquire_at(SM8, now + Duration::from_millis(334)).is_ok());
        assert!(d.acquire_at("https://other.example:443", now).is_ok());
    }

    #[test]
    fn a_throttled_backlog_comes_back_spread_at_the_destination_rate() {
        let d = destinations(
            "[[destinations]]\nmatch = \"https://api.servicem8.com\"\nrate_per_second = 10\n",
        );
        let now = Instant::now();
        let waits: Vec<u64> = (0..30)
            .filter_map(|_| d.acquire_at(SM8, now).err().map(Wait::ms))
            .collect();
        assert_eq!(waits.len(), 20, "10 tokens, then deferrals");
        assert!(
            waits.windows(2).all(|w| w[1] >= w[0] + 99),
            "each deferral a slot later: {waits:?}"
        );
        assert!(*waits.last().unwrap() >= 1_900);
    }

    #[test]
    fn concurrency_is_capped_per_destination() {
        let d = destinations(
            "[[destinations]]\nmatch = \"https://api.servicem8.com\"\nconcurrency = 1\n",
        );
        let held = d.acquire(SM8).unwrap();
        assert!(matches!(d.acquire(SM8), Err(Wait::Busy(_))));
        drop(held);
        assert!(d.acquire(SM8).is_ok());
    }

    #[test]
    fn the_circuit_opens_after_repeated_failures_and_one_probe_closes_it() {
        let d = destinations(
            "[[destinations]]\nmatch = \"https://api.servicem8.com\"\nbreaker_failures = 2\nbreaker_open_secs = 1\n",
        );
        let t0 = Instant::now();
        d.acquire_at(SM8, t0).unwrap().record(true);
        d.acquire_at(SM8, t0).unwrap().record(true);
        assert!(matches!(d.acquire_at(SM8, t0), Err(Wait::CircuitOpen(_))));
        let later = Instant::now() + Duration::from_secs(2);
        let probe = d
            .acquire_at(SM8, later)
            .expect("one probe after the open time");
        assert!(
            matches!(d.acquire_at(SM8, later), Err(Wait::CircuitOpen(_))),
            "only one probe"
        );
        probe.record(false);
        assert!(
            d.acquire_at(SM8, later).is_ok(),
            "closed after a good probe"
        );
    }

    #[test]
    fn retry_statuses_and_schedules_are_configurable() {
        let d = destinations(
            "[[destinations]]\nmatch = \"https://api.servicem8.com\"\nretry_statuses = [409, \"5xx\"]\nretry_schedule_ms = [100, 1000]\nmax_attempts = 9\n",
        );
        let p = d.policy(SM8);
        assert!(p.retries_status(409) && p.retries_status(503) && !p.retries_status(429));
        assert_eq!([1, 2, 5].map(|a| p.backoff.delay_ms(a)), [100, 1000, 1000]);
        assert_eq!(p.max_attempts, 9);
        assert!(
            d.policy("https://x:443").retries_status(429),
            "defaults elsewhere"
        );
    }

    #[test]
    fn exponential_backoff_is_jittered_below_its_ceiling() {
        let b = Backoff::Exponential {
            base_ms: 100,
            max_ms: 300_000,
        };
        for attempt in 1..=4u32 {
            assert!((0..200).all(|_| b.delay_ms(attempt) <= 100 * (1 << (attempt - 1))));
        }
        assert!((0..200).all(|_| b.delay_ms(40) <= 300_000));
        assert!((0..200).any(|_| b.delay_ms(4) < 800), "full jitter");
    }
}
