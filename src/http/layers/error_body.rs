//! Every error response leaves in one shape, `{"error", "error_type", "request_id"}`:
//! - our own JSON errors get the request id stamped in;
//! - other error bodies (unknown route 404, method 405, ...) are rewrapped;
//! - a 5xx body that is not ours is replaced by a generic message (its text goes to the log),
//!   so no path, panic text or backtrace ever reaches a client.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::error::{generic_message, ErrorBody};

/// Largest error body read back for rewriting; ours are far smaller.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn layer(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    let mut error = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(ours) => ours,
        Err(_) => {
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            if status.is_server_error() {
                tracing::error!(status = status.as_u16(), body = %text, "replaced a 5xx body");
                ErrorBody { error: generic_message(status).into(), error_type: error_type(status).into(), request_id: None }
            } else {
                let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
                ErrorBody { error: message, error_type: error_type(status).into(), request_id: None }
            }
        }
    };
    error.request_id = request_id;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut rebuilt = Json(error).into_response();
    *rebuilt.status_mut() = status;
    let (_, body) = rebuilt.into_parts();
    Response::from_parts(parts, Body::new(body))
}

/// A stable `error_type` for statuses produced outside our handlers.
fn error_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_client_error() => "bad_request",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        _ => "internal",
    }
}
