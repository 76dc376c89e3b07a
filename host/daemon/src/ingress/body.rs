//! Reading a webhook's body: within the size limit, and within the time
//! limit, so a client that stalls mid-body is answered rather than
//! holding its connection for as long as it likes.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than `max_body_bytes`.
    #[error("body over {limit} bytes")]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// Not all there within the body read timeout.
    #[error("body not received within {0:?}")]
    TimedOut(Duration),
    /// The connection failed while the body was read.
    #[error("cannot read the body: {0}")]
    Failed(String),
}

/// Reads all of `body`: at most `limit` bytes, within `timeout`.
pub async fn read(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(BodyError::TimedOut(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { limit })
        }
        Ok(Err(e)) => Err(BodyError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_within_both_limits_is_read_whole() {
        let got = read(Body::from("hello"), 5, Duration::from_secs(1)).await;
        assert_eq!(got.unwrap(), "hello");
    }

    #[tokio::test]
    async fn a_body_over_the_size_limit_is_too_large() {
        let got = read(Body::from("hello!"), 5, Duration::from_secs(1)).await;
        assert!(
            matches!(got, Err(BodyError::TooLarge { limit: 5 })),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_times_out() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        tx.send(Ok(Bytes::from_static(b"part of it")))
            .await
            .unwrap();
        let stream = tokio_stream_of(rx);
        let got = read(Body::from_stream(stream), 1024, Duration::from_millis(200)).await;
        assert!(
            matches!(got, Err(BodyError::TimedOut(d)) if d == Duration::from_millis(200)),
            "{got:?}"
        );
        drop(tx);
    }

    /// The receiver as a stream, without a stream crate.
    fn tokio_stream_of<T: Send + 'static>(
        rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send + 'static {
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
    }
}
