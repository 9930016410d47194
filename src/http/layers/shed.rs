//! Load shedding: when the queue has no room, or the work already queued would outlast the request's
//! deadline at the worker's measured rate, answer 503 + `Retry-After` (from that estimate) at once —
//! before the body is read, before the tokenizer or the model is touched. While the model loads,
//! every inference request gets its 503 here too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use tokio::time::Instant;

use super::body;
use crate::http::error::ApiError;
use crate::http::state::AppState;

pub async fn layer(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let infer = match state.infer() {
        Ok(infer) => infer,
        Err(e) => return body::refuse(request, e).await,
    };
    // The deadline the timeout layer will set: a request the queue cannot serve by then is refused
    // now, while refusing costs nothing.
    match infer.shed(Instant::now() + state.batching.request_timeout) {
        Ok(()) => next.run(request).await,
        Err(e) => body::refuse(request, ApiError::Infer(e)).await,
    }
}
