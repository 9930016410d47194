//! API errors: each knows its HTTP status, a stable `error_type` and whether the connection must
//! close. The decision is made once, here: the response carries it as a [`Rejection`] extension,
//! which the error layer reads to stamp the request id and log (it never re-parses a body).
//! 5xx bodies are generic; the detail goes to the log, never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::infer::InferError;

/// The JSON body of every error response (off the OpenAI routes).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub error_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (not UTF-8, not JSON).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid (wrong types, wrong shape).
    #[error("{0}")]
    Validation(String),
    /// The inference service refused or failed the call.
    #[error(transparent)]
    Infer(#[from] InferError),
    /// The body is over the limit; `drained` when it was read to its end (the connection stays usable).
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize, drained: bool },
    #[error("the request body did not arrive within {}", humantime::format_duration(*.0))]
    BodyTimeout(std::time::Duration),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("unsupported content type {0:?}: send application/json")]
    UnsupportedMediaType(String),
    #[error("not found")]
    NotFound,
    /// A model name (or version) other than the served one (KServe v2 routes).
    #[error("model {0} is not served here")]
    UnknownModel(String),
    /// A TEI route the served model has no head for (`/rerank` on an embedding model): TEI's 424.
    #[error("model is not {0} model")]
    WrongModel(&'static str),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The client went away before its request was read (logged and counted as 499, like nginx).
    #[error("the client closed the connection")]
    ClientGone,
    /// The model is still loading.
    #[error("the model is still loading, retry later")]
    Loading,
    /// Anything internal outside the service (a handler panic); logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Marks a response whose error status is an answer, not a failure (a probe's 503): the error
/// layer leaves its body alone.
#[derive(Debug, Clone, Copy)]
pub struct OwnBody;

/// The decision about an error response, attached to it as an extension.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: StatusCode,
    pub error_type: &'static str,
    /// What the client reads.
    pub message: String,
    /// What the log gets for a 5xx (never sent).
    pub detail: Option<String>,
    /// Close the connection after this response (the request was not read whole).
    pub close: bool,
    /// For a 503 or 429: when to try again.
    pub retry_after: Option<std::time::Duration>,
}

impl Rejection {
    /// The JSON body for this rejection.
    pub fn body(&self, request_id: Option<String>) -> ErrorBody {
        ErrorBody { error: self.message.clone(), error_type: self.error_type.into(), request_id }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Infer(e) => match e {
                InferError::Params(_) | InferError::NoInputs | InferError::Input { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                InferError::TooManyInputs { .. } | InferError::TooMuchWork { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                InferError::ResponseTooLarge { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                InferError::Overloaded { .. } | InferError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                InferError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                InferError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                // Nobody reads it: the client is gone (nginx's 499).
                InferError::Abandoned => client_gone(),
                InferError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound | Self::UnknownModel(_) => StatusCode::NOT_FOUND,
            Self::WrongModel(_) => StatusCode::FAILED_DEPENDENCY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Loading => StatusCode::SERVICE_UNAVAILABLE,
            Self::ClientGone => client_gone(),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation",
            Self::Infer(e) => match e {
                InferError::Params(_) | InferError::NoInputs | InferError::Input { .. } => "validation",
                InferError::TooManyInputs { .. } => "too_many_inputs",
                InferError::TooMuchWork { .. } => "too_much_work",
                InferError::ResponseTooLarge { .. } => "response_too_large",
                InferError::Abandoned => "abandoned",
                InferError::Overloaded { .. } => "overloaded",
                // OpenAI's code for it, so its clients' retry logic recognises it.
                InferError::RateLimited { .. } => "rate_limit_exceeded",
                InferError::Unavailable => "unavailable",
                InferError::Timeout => "timeout",
                InferError::Internal(_) => "internal",
            },
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::Unauthorized(_) => "unauthorized",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::NotFound => "not_found",
            Self::UnknownModel(_) => "model_not_found",
            Self::WrongModel(_) => "model_type",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Loading => "loading",
            Self::ClientGone => "client_gone",
            Self::Internal(_) => "internal",
        }
    }

    /// The rejection this error becomes.
    pub fn rejection(&self) -> Rejection {
        let status = self.status();
        let (message, detail) = if status.is_server_error() {
            let detail =
                matches!(self, Self::Internal(_) | Self::Infer(InferError::Internal(_))).then(|| self.to_string());
            let message = match status {
                StatusCode::SERVICE_UNAVAILABLE => self.to_string(),
                StatusCode::GATEWAY_TIMEOUT => "request timed out".to_string(),
                _ => "internal server error".to_string(),
            };
            (message, detail)
        } else {
            (self.to_string(), None)
        };
        // The body was not read to its end: the connection cannot carry another request.
        let close = matches!(self, Self::PayloadTooLarge { drained: false, .. } | Self::BodyTimeout(_));
        let retry_after = match self {
            Self::Infer(InferError::Overloaded { retry_after } | InferError::RateLimited { retry_after }) => {
                Some(*retry_after)
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(std::time::Duration::from_secs(1)),
            _ => None,
        };
        Rejection { status, error_type: self.error_type(), message, detail, close, retry_after }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        rejection_response(self.rejection(), &self)
    }
}

/// 499: nginx's status for a request whose client went away; nobody reads it, the log and
/// `requests_total` do.
fn client_gone() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

/// Marks an error response as the last on its connection.
pub fn close_connection(response: &mut Response) {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(rejection) = response.extensions_mut().get_mut::<Rejection>() {
        rejection.close = true;
    }
}

fn rejection_response(rejection: Rejection, error: &ApiError) -> Response {
    let mut response = (rejection.status, Json(rejection.body(None))).into_response();
    let headers = response.headers_mut();
    if let Some(after) = rejection.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
    }
    if matches!(error, ApiError::Unauthorized(_)) {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if rejection.close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response.extensions_mut().insert(rejection);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::InputError;
    use crate::worker::WorkerError;

    #[test]
    fn each_error_is_decided_once_with_status_type_and_close() {
        let r = ApiError::from(InferError::Input { index: Some(2), error: InputError::Empty }).rejection();
        assert_eq!(
            (r.status, r.error_type, r.message.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation", "inputs[2]: input text is empty")
        );
        let r = ApiError::from(InferError::Overloaded { retry_after: std::time::Duration::from_secs(7) }).rejection();
        assert_eq!((r.status, r.error_type, r.close), (StatusCode::SERVICE_UNAVAILABLE, "overloaded", false));
        let response =
            ApiError::from(InferError::Overloaded { retry_after: std::time::Duration::from_secs(7) }).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7", "Retry-After from the queue's estimate");
        let limited = ApiError::from(InferError::RateLimited { retry_after: std::time::Duration::from_secs(3) });
        let r = limited.rejection();
        assert_eq!((r.status, r.error_type), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"));
        assert_eq!(limited.into_response().headers()[header::RETRY_AFTER], "3", "Retry-After from the bucket");
        let r = ApiError::PayloadTooLarge { limit: 10, drained: false }.rejection();
        assert_eq!((r.status, r.close), (StatusCode::PAYLOAD_TOO_LARGE, true));
        assert!(!ApiError::PayloadTooLarge { limit: 10, drained: true }.rejection().close);
        assert_eq!(
            ApiError::from(InferError::from(WorkerError::Expired)).rejection().status,
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    #[test]
    fn internal_details_go_to_the_log_never_to_the_client() {
        let panic = InferError::from(WorkerError::Panicked("index out of bounds at src/model/mod.rs:42".into()));
        let r = ApiError::from(panic).rejection();
        assert_eq!(
            (r.status, r.error_type, r.message.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error")
        );
        assert!(r.detail.as_deref().is_some_and(|d| d.contains("src/model/mod.rs:42")), "the log gets the detail");
        let response = ApiError::Internal("handler panicked: boom".into()).into_response();
        assert!(response.extensions().get::<Rejection>().is_some_and(|r| !r.message.contains("boom")));
    }
}
