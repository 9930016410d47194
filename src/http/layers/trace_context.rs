//! The trace id on every traced response: `x-trace-id`, and `traceparent` naming the server's
//! request span, so a client can find its request in the tracing backend. Nothing when tracing is
//! off.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

use crate::telemetry::traces;

const TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

pub async fn layer(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(sc) = traces::span_context(&Span::current()) {
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&sc.trace_id().to_string()) {
            headers.insert(TRACE_ID, v);
        }
        if let Ok(v) = HeaderValue::from_str(&traces::traceparent(&sc)) {
            headers.insert(TRACEPARENT, v);
        }
    }
    response
}
