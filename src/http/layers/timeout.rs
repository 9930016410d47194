//! Request timeout: 504 when a request takes longer than `--request-timeout`. The deadline is set
//! here once and handed to the handler as a [`Deadline`] extension, so the queue drops the
//! request's inputs at the same instant this layer answers. Dropping the handler drops its reply
//! channels, so queued inputs of a timed-out request are skipped by the batcher either way.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::http::error::ApiError;
use crate::infer::InferError;

/// When the request's time is up.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

pub async fn layer(State(limit): State<Duration>, mut request: Request, next: Next) -> Response {
    let deadline = Instant::now() + limit;
    request.extensions_mut().insert(Deadline(deadline));
    match tokio::time::timeout_at(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Infer(InferError::Timeout).into_response(),
    }
}
