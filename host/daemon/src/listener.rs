//! Serving a router on a TCP listener without letting slow or idle clients
//! take what the daemon needs: at most `max_connections` connections at
//! once (further ones wait in the kernel's accept queue, holding none of
//! the daemon's descriptors), each closed when a request's headers take
//! longer than `header_read_timeout`, and a graceful stop.
//!
//! Used for the webhook listener and the admin API. Requests carry the
//! peer's address as [`ConnectInfo`], as `axum::serve` gives it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower_service::Service as _;

/// How many clients to serve at once, and how long to wait for each
/// request's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: NonZeroUsize,
    /// Time for a request's headers to arrive, also when a kept-alive
    /// connection waits for its next request.
    pub header_read_timeout: Duration,
}

/// How long to wait before accepting again after `accept` failed for want
/// of descriptors (or memory): long enough for some to be freed, short
/// enough that a webhook waiting in the accept queue is not given up on.
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `stop` turns true, then stops
/// accepting and waits for the connections open to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    // A semaphore hands out permits up to its maximum, and `acquire_many`
    // takes a u32.
    let max = limits
        .max_connections
        .get()
        .min(Semaphore::MAX_PERMITS)
        .min(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
    let slots = Arc::new(Semaphore::new(max));
    // Whether the last accept failed for want of descriptors.
    let mut starved = false;
    loop {
        // A slot first: at the cap, connections stay in the accept queue.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                starved = false;
                tokio::spawn(connection(
                    stream,
                    peer,
                    app.clone(),
                    limits.header_read_timeout,
                    stop.clone(),
                    permit,
                ));
            }
            Err(e) if is_out_of_descriptors(&e) => {
                // Once per shortage, not every pause: the log is no help
                // if it fills the disk while the daemon waits.
                if !starved {
                    tracing::error!(
                        error = %e,
                        max_connections = max,
                        "cannot accept a connection: the process is out of file descriptors; pausing accepts until some are freed. Raise the open-file hard limit (systemd LimitNOFILE=, ulimit -Hn) or lower [ingress] max_connections"
                    );
                }
                starved = true;
                tokio::time::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
            }
            // The peer gave up before it was accepted: the next one waits.
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "accept failed");
            }
            // Anything else (out of memory or buffers): pause rather than
            // spin on it.
            Err(e) => {
                tracing::error!(error = %e, "accept failed; pausing accepts");
                tokio::time::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
            }
        }
    }
    drop(listener);
    // Every slot back: every connection has finished.
    let _ = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
}

/// Resolves once `stop` turns true, or its sender is gone. Holds no
/// borrow of the value, so the future stays `Send` across later awaits.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Errors about one connection, not the listener: the next accept is
/// unaffected.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// `accept` failed because the process (EMFILE) or the system (ENFILE) has
/// no descriptor left to give the connection.
fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Serves one connection, holding its slot until it closes.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let served = tokio::select! {
        served = conn.as_mut() => served,
        () = stopped(&mut stop) => {
            // Finish the request in hand, if any, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = served {
        // Headers that never came, a client that went away: routine.
        tracing::debug!(%peer, error = %e, "connection closed");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn start(
        limits: ConnectionLimits,
    ) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let app = Router::new()
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "done"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, app, limits, stopped));
        (addr, stop, server)
    }

    /// Sends `GET /peer` on `stream` and returns the answer's body.
    async fn ask(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.rsplit("\r\n").next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn requests_see_the_peer_address() {
        let (addr, _stop, _server) = start(ConnectionLimits {
            max_connections: NonZeroUsize::new(4).unwrap(),
            header_read_timeout: Duration::from_secs(5),
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let local = stream.local_addr().unwrap();
        assert_eq!(ask(&mut stream).await, local.to_string());
    }

    #[tokio::test]
    async fn a_connection_over_the_cap_is_served_once_another_closes() {
        let (addr, _stop, _server) = start(ConnectionLimits {
            max_connections: NonZeroUsize::new(1).unwrap(),
            header_read_timeout: Duration::from_secs(30),
        })
        .await;
        let first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::spawn(async move { ask(&mut second).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "served past the cap");
        drop(first);
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(answer.is_ok(), "still waiting after a slot was freed");
    }

    #[tokio::test]
    async fn headers_that_do_not_arrive_in_time_close_the_connection() {
        let (addr, _stop, _server) = start(ConnectionLimits {
            max_connections: NonZeroUsize::new(4).unwrap(),
            header_read_timeout: Duration::from_millis(300),
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "still open after 5 s");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn stopping_finishes_the_request_in_hand_closes_idle_connections_and_returns() {
        let (addr, stop, server) = start(ConnectionLimits {
            max_connections: NonZeroUsize::new(4).unwrap(),
            header_read_timeout: Duration::from_secs(30),
        })
        .await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("stopped")
            .unwrap();
        let mut answer = String::new();
        busy.read_to_string(&mut answer).await.unwrap();
        assert!(answer.ends_with("done"), "{answer}");
        let mut rest = Vec::new();
        assert_eq!(idle.read_to_end(&mut rest).await.unwrap(), 0, "closed");
    }
}
