//! One log line per request: route, method, status, latency, request id, and for inference routes
//! the queue wait and batch size; the trace id when traced. Never a body. Probes and scrapes
//! (`/health/*`, `/metrics`) log at debug: they come every few seconds and say little.

use std::cell::Cell;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

use crate::telemetry::traces;

tokio::task_local! {
    /// The request's largest queue wait and batch size, noted by the handler as answers arrive.
    static BATCH: Cell<Option<(Duration, usize)>>;
}

/// Notes that one of this request's inputs waited `queue_wait` and ran in a batch of
/// `batch_size`; the log line shows the largest of each. Outside a request it does nothing.
pub fn record_batch(queue_wait: Duration, batch_size: usize) {
    let _ = BATCH.try_with(|cell| {
        let (wait, size) = cell.get().unwrap_or_default();
        cell.set(Some((wait.max(queue_wait), size.max(batch_size))));
    });
}

pub async fn layer(request: Request, next: Next) -> Response {
    // The route template, never the raw path.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().clone();
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let started = Instant::now();
    let (response, batch) = BATCH
        .scope(Cell::new(None), async {
            let response = next.run(request).await;
            (response, BATCH.with(Cell::get))
        })
        .await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status();
    let span = Span::current();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let trace_id = traces::trace_id(&span);
    let queue_wait_ms = batch.map(|(wait, _)| wait.as_secs_f64() * 1000.0);
    let batch_size = batch.map(|(_, size)| size as u64);
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                $level, route, method = %method, status = status.as_u16(), latency_ms, queue_wait_ms, batch_size,
                request_id, trace_id, "request"
            )
        };
    }
    if route.starts_with("/health/") || route == "/metrics" {
        line!(tracing::Level::DEBUG);
    } else {
        line!(tracing::Level::INFO);
    }
    response
}
