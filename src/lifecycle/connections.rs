//! The accept loop and the connections it serves, with the bounds hyper does not set itself:
//! - a header read timeout (`axum::serve` has none: a client sending a byte a minute would hold
//!   a connection and a task forever);
//! - at most `max_connections` open: the excess is closed at once and counted, instead of queueing
//!   in the kernel until the process runs out of file descriptors;
//! - accept errors logged at most once a second, with the number left out;
//! - a response write blocked for longer than the write timeout (a client that stopped reading)
//!   fails and closes its connection;
//! - on drain: connections with no request in flight (idle keep-alive, or still sending their
//!   headers) close at once; the others finish the request they are on, then close.
//!
//! A request is "in flight" from the moment the router gets it until hyper has written the last
//! byte of its response (the response body carries a guard).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::write_timeout::WriteTimeout;
use crate::telemetry::Metrics;

/// What the accept loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Longest a response write may stay blocked on a client that does not read.
    pub write_timeout: Duration,
}

/// Serves `router` on `listener` until `drain` completes, then stops accepting and returns once
/// every connection has closed (see the module doc for which close at once). Drops the router.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    drain: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let (draining, drain_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut accept_errors = RateLimitedLog::default();
    tokio::pin!(drain);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    accept_errors.warn(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut drain => break,
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= limits.max_connections {
            metrics.connections_rejected.inc();
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = {
            let (router, in_flight) = (router.clone(), in_flight.clone());
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let guard = InFlight::enter(&in_flight);
                let router = router.clone();
                async move {
                    let response = router.oneshot(request.map(Body::new)).await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(Guarded { body, _guard: guard })))
                }
            })
        };
        let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
        let connection = http.serve_connection(io, service);
        let mut drain_seen = drain_seen.clone();
        let open = metrics.connections.clone();
        open.inc();
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("connection ended: {e}");
                    }
                }
                () = async { drop(drain_seen.wait_for(|d| *d).await) } => {
                    // Idle, or still sending its request head: nothing accepted is lost by closing.
                    if in_flight.load(Ordering::Acquire) > 0 {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            }
            open.dec();
        });
    }
    drop(listener);
    drop(router);
    let _ = draining.send(true);
    while connections.join_next().await.is_some() {}
}

/// Counts a request in flight on its connection until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until hyper has written it (and dropped it).
struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A warning at most once a second, saying how many were left out.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn warn(&mut self, error: &std::io::Error) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(suppressed = self.suppressed, "accept failed: {error}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}
