//! The load generator every benchmark shares: keep-alive HTTP/1.1 over
//! raw TCP, closed loop (each connection sends its next request when the
//! answer arrives: the most a server takes) or open loop (requests at a
//! fixed offered rate, latency counted from when each was due, so falling
//! behind shows).
//!
//! It writes pre-serialised request bytes and parses only the status line
//! and `content-length` of each answer: it shares the two cores with the
//! server under test, so it must cost as little CPU as possible (a reqwest
//! client took about half of the machine).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Makes request `i` (the whole HTTP/1.1 request), or `None` when there
/// are no more.
pub(crate) type MakeRequest = dyn Fn(usize) -> Option<Vec<u8>> + Send + Sync;

pub(crate) struct RunResult {
    pub(crate) elapsed: Duration,
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) errors: usize,
}

/// How a run is driven.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drive {
    /// Keep-alive connections, each with one request in flight.
    pub(crate) connections: usize,
    /// Offered load in requests/s (open loop): request `i` is due at
    /// `start + i / rate` and its latency counts from then. `None`: closed
    /// loop.
    pub(crate) rate: Option<u32>,
    /// Stop sending after this long (requests in flight finish).
    pub(crate) duration: Option<Duration>,
}

/// Sends requests `0, 1, 2, ...` from `make` until it returns `None` or
/// the duration is up, and records each request's latency; an answer other
/// than 200 counts as an error.
pub(crate) async fn run(url: &str, make: Arc<MakeRequest>, drive: Drive) -> RunResult {
    let Ok((addr, _path)) = split_url(url) else {
        eprintln!("fieldhook-bench: only http://host:port/path URLs are supported: {url}");
        return RunResult {
            elapsed: Duration::ZERO,
            latencies_us: Vec::new(),
            errors: 1,
        };
    };
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let stop = drive.duration.map(|d| started + d);
    let mut tasks = Vec::new();
    for _ in 0..drive.connections.max(1) {
        let next = next.clone();
        let make = make.clone();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut conn: Option<Connection> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let t = match drive.rate {
                    Some(rate) => {
                        let due = started + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
                        if stop.is_some_and(|s| due >= s) {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                if stop.is_some_and(|s| t >= s) {
                    break;
                }
                let Some(bytes) = make(i) else { break };
                let c = match conn.take() {
                    Some(c) => c,
                    None => match Connection::open(&addr).await {
                        Ok(c) => c,
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    },
                };
                match c.exchange(&bytes).await {
                    Ok((c, 200)) => {
                        conn = Some(c);
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    Ok((c, _)) => {
                        conn = Some(c);
                        errors += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            latencies_us.extend(l);
            errors += e;
        }
    }
    RunResult {
        elapsed: started.elapsed(),
        latencies_us,
        errors,
    }
}

/// Percentile `p` (0..1) of sorted `values`.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    let n = sorted.len();
    if n == 0 {
        return 0;
    }
    sorted[((n as f64 * p) as usize).min(n - 1)]
}

/// `http://host:port/path` -> (`host:port`, `/path`).
pub(crate) fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("only http:// URLs are supported: {url}"))?;
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok((addr.to_owned(), format!("/{path}")))
}

/// One keep-alive connection of the load generator.
struct Connection {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: &str) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Sends one request and reads its whole answer; returns the status.
    async fn exchange(mut self, request: &[u8]) -> std::io::Result<(Self, u16)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response
                .parse(&self.buf)
                .map_err(|e| std::io::Error::other(e.to_string()))?
            {
                let status = response.code.unwrap_or(0);
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while self.buf.len() < head + length {
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                return Ok((self, status));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

pub(crate) fn report(name: &str, r: &mut RunResult) {
    r.latencies_us.sort_unstable();
    let pct = |p: f64| percentile(&r.latencies_us, p);
    println!(
        "{name:<22} {:>9.0} req/s   p50 {:>6.2} ms   p90 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   errors {}",
        r.latencies_us.len() as f64 / r.elapsed.as_secs_f64(),
        pct(0.50) as f64 / 1000.0,
        pct(0.90) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        r.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        r.errors
    );
}
