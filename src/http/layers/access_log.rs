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
    let method = request.method().to_string();
    let request_id =
        request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut line = Line { route, method, request_id, started: Instant::now(), span: Span::current(), outcome: None };
    let response = next.run(request).await;
    // The handler attaches how the request's inputs were batched.
    line.outcome = Some((response.status().as_u16(), response.extensions().get::<BatchStats>().copied()));
    response
}

/// The request's log line, written when the request ends, answered or not: a dropped future (the
/// client hung up) logs status 499, so abandoned requests show in the log too.
struct Line {
    route: String,
    method: String,
    request_id: String,
    started: Instant,
    span: Span,
    outcome: Option<(u16, Option<BatchStats>)>,
}

impl Drop for Line {
    fn drop(&mut self) {
        let (status, batch) = self.outcome.unwrap_or((499, None));
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let span = &self.span;
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        let trace_id = traces::trace_id(span);
        let queue_wait_ms = batch.map(|b| b.queue_wait.as_secs_f64() * 1000.0);
        let batch_size = batch.map(|b| b.batch_size as u64);
        let (route, method, request_id) = (&self.route, &self.method, &self.request_id);
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    parent: span, $level, route, method, status, latency_ms, queue_wait_ms, batch_size,
                    request_id, trace_id, "request"
                )
            };
        }
        if route.starts_with("/health/") || route == "/metrics" {
            line!(tracing::Level::DEBUG);
        } else {
            line!(tracing::Level::INFO);
        }
    }
}
