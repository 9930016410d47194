//! Body read timeout: the whole body must arrive within `--body-read-timeout` of the headers, or
//! the request ends with 408, so a client trickling its body cannot hold a connection and a
//! handler. The body is buffered here (the handlers buffer it anyway) under the body limit that
//! the layer outside has set, so an oversized body is still a 413.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

pub async fn layer(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(limit, to_bytes(body, usize::MAX)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if is_length_limit(&e) => return ApiError::PayloadTooLarge.into_response(),
        Ok(Err(_)) => return ApiError::BadRequest("the request body could not be read".into()).into_response(),
        Err(_) => return ApiError::BodyTimeout(limit).into_response(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}
