//! Load shedding: a tenant over its token quota gets 429 + `Retry-After` (from its bucket); when
//! the queue has no room for the request's class, or the work its class waits for would outlast
//! the request's deadline at the worker's measured rate, 503 + `Retry-After` (from that estimate)
//! at once — before the body is read, before the tokenizer or the model is touched. While the
//! model loads, every inference request gets its 503 here too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use tokio::time::Instant;

use super::body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::infer::Caller;

pub async fn layer(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let infer = match state.infer() {
        Ok(infer) => infer,
        Err(e) => return body::refuse(request, e).await,
    };
    let caller = request.extensions().get::<Caller>().cloned().unwrap_or_default();
    // The deadline the timeout layer will set: a request the queue cannot serve by then is refused
    // now, while refusing costs nothing.
    let timeout = infer.settings().classes.timeout(infer.class_of(&caller));
    match infer.shed(&caller, Instant::now() + timeout) {
        Ok(()) => next.run(request).await,
        Err(e) => body::refuse(request, ApiError::Infer(e)).await,
    }
}
