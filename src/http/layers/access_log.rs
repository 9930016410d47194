//! One log line per request: route, method, status, latency, request id, and for inference routes
//! the queue wait and batch size; the trace id when traced. Never a body. Probes and scrapes
//! (`/health/*`, `/metrics`) log at debug: they come every few seconds and say little.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

use crate::infer::BatchStats;
use crate::telemetry::traces;

pub async fn layer(request: Request, next: Next) -> Response {
    // The route template, never the raw path.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().clone();
    let request_id =
        request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    // The handler attaches how the request's inputs were batched.
    let batch = response.extensions().get::<BatchStats>().copied();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status();
    let span = Span::current();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let trace_id = traces::trace_id(&span);
    let queue_wait_ms = batch.map(|b| b.queue_wait.as_secs_f64() * 1000.0);
    let batch_size = batch.map(|b| b.batch_size as u64);
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
