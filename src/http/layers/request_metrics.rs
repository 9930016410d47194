//! Requests by route and status, and their duration.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::telemetry::Metrics;

/// Status recorded for a request whose client went away before its response (nginx's 499).
pub const CLIENT_GONE: &str = "499";

pub async fn layer(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    // The route template, never the raw path: unknown paths must not grow the label set.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let mut count = Count { metrics, route, started: Instant::now(), status: None };
    let response = next.run(request).await;
    count.status = Some(response.status());
    response
}

/// Counts the request when it ends, answered or not: a dropped future (the client hung up) counts
/// as 499, so abandoned work shows in `requests_total` too.
struct Count {
    metrics: Arc<Metrics>,
    route: String,
    started: Instant,
    status: Option<axum::http::StatusCode>,
}

impl Drop for Count {
    fn drop(&mut self) {
        let status = self.status.as_ref().map_or(CLIENT_GONE, axum::http::StatusCode::as_str);
        self.metrics.requests.with_label_values(&[self.route.as_str(), status]).inc();
        self.metrics
            .request_duration
            .with_label_values(&[self.route.as_str()])
            .observe(self.started.elapsed().as_secs_f64());
    }
}
