//! HTTP/1.1 rules hyper leaves to the application (RFC 9112 §3.2): a request without `Host` is
//! refused (400). (A request with both `Transfer-Encoding` and `Content-Length` never gets here
//! as such: hyper drops the `Content-Length`, reads the body by its chunked framing and closes the
//! connection after the answer, as RFC 9112 §6.1 asks; tests/server/hardening.rs checks it.)

use axum::extract::Request;
use axum::http::{header, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

pub async fn layer(request: Request, next: Next) -> Response {
    let headers = request.headers();
    if request.version() == Version::HTTP_11 && !headers.contains_key(header::HOST) {
        return ApiError::BadRequest("an HTTP/1.1 request needs a Host header".into()).into_response();
    }
    next.run(request).await
}
