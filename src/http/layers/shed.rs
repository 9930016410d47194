//! Load shedding: when the queue has no free slot, answer 503 + `Retry-After` at once — before the
//! body is read, before the tokenizer or the model is touched. While the model loads, every
//! inference request gets its 503 here too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::infer::InferError;

pub async fn layer(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match state.infer() {
        Err(e) => e.into_response(),
        Ok(infer) if infer.is_full() => {
            state.metrics.shed.inc();
            ApiError::Infer(InferError::Overloaded).into_response()
        }
        Ok(_) => next.run(request).await,
    }
}
