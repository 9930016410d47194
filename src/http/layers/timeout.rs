//! Request timeout: 504 when a request takes longer than its class's timeout
//! (`--interactive-timeout`, `--batch-timeout`, both `--request-timeout` unless set). The deadline
//! is set here once and handed to the handler as a [`Deadline`] extension, with the [`Caller`],
//! so the queue drops the request's inputs at the same instant this layer answers. Dropping the
//! handler drops its reply channels, so queued inputs of a timed-out request are skipped by the
//! batcher either way.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::batching::Priority;
use crate::http::error::ApiError;
use crate::infer::{Caller, Classes, InferError};

/// When the request's time is up, and who it is for (a body's `priority` may still change the
/// class, not the deadline).
#[derive(Debug, Clone)]
pub struct Deadline {
    pub at: Instant,
    pub caller: Caller,
}

impl Deadline {
    /// The same deadline for the class a request's body named, if it named one.
    pub fn with_priority(mut self, priority: Option<Priority>) -> Self {
        if priority.is_some() {
            self.caller.priority = priority;
        }
        self
    }
}

pub async fn layer(State(classes): State<Classes>, mut request: Request, next: Next) -> Response {
    let caller = request.extensions().get::<Caller>().cloned().unwrap_or_default();
    let at = Instant::now() + classes.timeout(classes.of(&caller));
    request.extensions_mut().insert(Deadline { at, caller });
    match tokio::time::timeout_at(at, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Infer(InferError::Timeout).into_response(),
    }
}
