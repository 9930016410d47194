//! API errors: each knows its HTTP status and a stable `error_type`. 5xx bodies are generic; the
//! detail goes to the log, never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::batching::{Closed, Overloaded};
use crate::pipelines::ParamError;
use crate::tokenize::InputError;
use crate::worker::WorkerError;

/// The JSON body of every error response. `request_id` is filled in by the error layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Well-formed but invalid (wrong types, empty input, no mask token, bad parameter).
    #[error("{0}")]
    Validation(String),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error("too many inputs: {count} in one request, the limit is {max}")]
    TooManyInputs { count: usize, max: usize },
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {}", humantime::format_duration(*.0))]
    BodyTimeout(std::time::Duration),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("unsupported content type {0:?}: send application/json")]
    UnsupportedMediaType(String),
    #[error("server is overloaded, retry later")]
    Overloaded,
    #[error("request timed out")]
    Timeout,
    /// Not ready, draining or shutting down.
    #[error("server is not accepting work right now")]
    Unavailable,
    /// Anything internal; the detail is logged, the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::Input(_) | Self::Params(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyInputs { .. } | Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Overloaded | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) | Self::Input(_) | Self::Params(_) => "validation",
            Self::TooManyInputs { .. } => "too_many_inputs",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::Unauthorized(_) => "unauthorized",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// The generic message clients see for a 5xx status.
pub fn generic_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => "server is not accepting work right now, retry later",
        StatusCode::GATEWAY_TIMEOUT => "request timed out",
        _ => "internal server error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                generic_message(status).to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody { error: message, error_type: self.error_type().into(), request_id: None };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::Overloaded | Self::Unavailable) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Self::Unauthorized(_)) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Overloaded> for ApiError {
    fn from(_: Overloaded) -> Self {
        Self::Overloaded
    }
}

impl From<Closed> for ApiError {
    fn from(_: Closed) -> Self {
        Self::Unavailable
    }
}

impl From<WorkerError> for ApiError {
    fn from(e: WorkerError) -> Self {
        match e {
            WorkerError::Expired => Self::Timeout,
            other => Self::Internal(other.to_string()),
        }
    }
}
