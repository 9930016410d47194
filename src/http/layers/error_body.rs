//! Every error response leaves in one shape, `{"error", "error_type", "request_id"}` (on the
//! OpenAI routes `/v1/*`, OpenAI's `{"error": {"message", "type", "param", "code"}}`; on KServe's
//! `/v2/*`, the protocol's `{"error"}`: the request id is in `x-request-id`). The error was
//! decided where it happened ([`Rejection`] in the response's extensions); this layer stamps the
//! request id into the body, logs 5xx details (they never reach the client) and closes the
//! connection when the rejection says so. An error status without a rejection is a bug: it is
//! logged and answered as an internal error.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::error::{ApiError, OwnBody, Rejection};

pub async fn layer(request: Request, next: Next) -> Response {
    // OpenAI's SDKs read errors in OpenAI's shape on its routes.
    let openai = request.uri().path().starts_with("/v1/");
    // KServe's v2 clients read `{"error": "..."}` on its routes.
    let v2 = crate::http::kserve::is_v2_path(request.uri().path());
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.extensions().get::<OwnBody>().is_some() {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let rejection = match parts.extensions.remove::<Rejection>() {
        Some(rejection) => rejection,
        None => {
            tracing::error!(status = status.as_u16(), "an error response carried no rejection");
            let rejection = ApiError::Internal(format!("unclassified {status} response")).rejection();
            parts.status = rejection.status;
            rejection
        }
    };
    if let Some(detail) = &rejection.detail {
        tracing::error!(status = rejection.status.as_u16(), error_type = rejection.error_type, detail = %detail, "request failed");
    }
    let body = if openai {
        Json(crate::http::openai::error_body(&rejection)).into_response()
    } else if v2 {
        Json(crate::http::kserve::error_body(&rejection)).into_response()
    } else {
        Json(rejection.body(request_id)).into_response()
    };
    let (body_parts, body) = body.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(content_type) = body_parts.headers.get(header::CONTENT_TYPE) {
        parts.headers.insert(header::CONTENT_TYPE, content_type.clone());
    }
    parts.extensions.insert(rejection);
    Response::from_parts(parts, body)
}
