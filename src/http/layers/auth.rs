//! Optional API key on the inference routes: `Authorization: Bearer <key>` or `x-api-key: <key>`,
//! compared in constant time so response timing does not leak how much of a guess was right.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;

/// The expected key, shared by every request.
#[derive(Clone)]
pub struct ApiKey(pub Arc<[u8]>);

/// `None`: no key configured, every request passes.
pub async fn layer(State(key): State<Option<ApiKey>>, request: Request, next: Next) -> Response {
    let Some(key) = key else {
        return next.run(request).await;
    };
    match verify(&key, request.headers()) {
        Ok(()) => next.run(request).await,
        // The body is read (or the connection closed) so the client's next request is not misread.
        Err(refusal) => super::body::refuse(request, refusal).await,
    }
}

/// Checks the key `headers` present against `key`, in constant time: the one check of every
/// transport (gRPC metadata are HTTP/2 headers).
pub fn verify(key: &ApiKey, headers: &HeaderMap) -> Result<(), ApiError> {
    match presented(headers) {
        Some(given) if bool::from(given.ct_eq(&key.0)) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("invalid API key")),
        None => Err(ApiError::Unauthorized("missing API key: send `Authorization: Bearer <key>`")),
    }
}

/// The key the client sent, if any. (`ct_eq` on slices of different lengths is false without
/// comparing contents; the length of the key is not treated as a secret.)
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.as_bytes();
        let scheme = value.get(..7)?;
        return scheme.eq_ignore_ascii_case(b"bearer ").then(|| value[7..].trim_ascii());
    }
    headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn finds_the_key_in_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("x-api-key", HeaderValue::from_static("k1"));
        assert_eq!(presented(&h), Some(&b"k1"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer k2"));
        assert_eq!(presented(&h), Some(&b"k2"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bear"));
        assert_eq!(presented(&h), None);
    }
}
