//! Load shedding: when the queue has no free slot, answer 503 + `Retry-After` at once — before the
//! body is read, before the tokenizer or the model is touched.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::batching::Batcher;
use crate::http::error::ApiError;
use crate::telemetry::Metrics;

/// What the shed layer needs.
#[derive(Clone)]
pub struct Shed {
    pub batcher: Batcher,
    pub metrics: std::sync::Arc<Metrics>,
}

pub async fn layer(State(shed): State<Shed>, request: Request, next: Next) -> Response {
    if shed.batcher.is_full() {
        shed.metrics.shed.inc();
        return ApiError::Overloaded.into_response();
    }
    next.run(request).await
}
