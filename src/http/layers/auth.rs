//! API keys and priority on the inference routes: the caller's tenant from its key
//! ([`Keys::authenticate`], shared with gRPC; 401 without a valid one when keys are configured),
//! and its class from `x-priority` (else the tenant's default). Both travel to the next layers and
//! the handler as a [`Caller`] extension.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::{AuthError, Keys};
use crate::batching::Priority;
use crate::http::error::ApiError;
use crate::infer::Caller;

/// The header naming a request's class: `interactive`, `batch` or a numeric level.
pub const PRIORITY_HEADER: &str = "x-priority";

pub async fn layer(State(keys): State<Arc<Keys>>, mut request: Request, next: Next) -> Response {
    let tenant = match keys.authenticate(request.headers()) {
        Ok(tenant) => tenant,
        Err(e) => {
            let refusal = ApiError::Unauthorized(match e {
                AuthError::Missing => "missing API key: send `Authorization: Bearer <key>`",
                AuthError::Invalid => "invalid API key",
            });
            // The body is read (or the connection closed) so the client's next request is not misread.
            return super::body::refuse(request, refusal).await;
        }
    };
    let priority = match request.headers().get(PRIORITY_HEADER).map(|v| v.to_str().map(Priority::parse)) {
        None => None,
        Some(Ok(Ok(p))) => p,
        Some(Ok(Err(e))) => {
            return super::body::refuse(request, ApiError::BadRequest(format!("{PRIORITY_HEADER}: {e}"))).await
        }
        Some(Err(_)) => {
            let e = ApiError::BadRequest(format!("{PRIORITY_HEADER}: not ASCII"));
            return super::body::refuse(request, e).await;
        }
    };
    request.extensions_mut().insert(Caller { tenant, priority });
    next.run(request).await
}
