//! Requests by route and status, and their duration.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::telemetry::Metrics;

pub async fn layer(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    // The route template, never the raw path: unknown paths must not grow the label set.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.requests.with_label_values(&[route.as_str(), response.status().as_str()]).inc();
    metrics.request_duration.with_label_values(&[route.as_str()]).observe(started.elapsed().as_secs_f64());
    response
}
