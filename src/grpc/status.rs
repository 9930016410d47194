//! Each error of a call becomes ONE `tonic::Status`, decided here (HTTP's status is decided once in
//! [`crate::http::error`]; the message, its sanitizing and the retry hint come from the same
//! [`Rejection`](crate::http::error::Rejection), so both transports say the same thing):
//!
//! | error | gRPC code |
//! |---|---|
//! | malformed or invalid input, parameters, tensors | `INVALID_ARGUMENT` |
//! | more inputs, tokens or response bytes than one request may have | `RESOURCE_EXHAUSTED` (retrying cannot help) |
//! | overloaded, loading, draining | `UNAVAILABLE`, with `google.rpc.RetryInfo` and `retry-after` |
//! | the tenant's token quota used up | `RESOURCE_EXHAUSTED`, with `google.rpc.RetryInfo` and `retry-after` from its bucket |
//! | deadline passed | `DEADLINE_EXCEEDED` |
//! | missing or wrong API key | `UNAUTHENTICATED` |
//! | another model or version | `NOT_FOUND` |
//! | a task the model has no head for | `FAILED_PRECONDITION` |
//! | the client went away | `CANCELLED` |
//! | internal | `INTERNAL`, "internal server error" (the detail goes to the log) |

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::http::error::ApiError;
use crate::infer::InferError;

/// The gRPC code of `error`.
pub fn code(error: &ApiError) -> Code {
    match error {
        ApiError::BadRequest(_) | ApiError::Validation(_) | ApiError::UnsupportedMediaType(_) => Code::InvalidArgument,
        ApiError::Infer(e) => match e {
            InferError::Params(_) | InferError::NoInputs | InferError::Input { .. } => Code::InvalidArgument,
            InferError::TooManyInputs { .. } | InferError::TooMuchWork { .. } | InferError::ResponseTooLarge { .. } => {
                Code::ResourceExhausted
            }
            InferError::Overloaded { .. } | InferError::Unavailable => Code::Unavailable,
            InferError::RateLimited { .. } => Code::ResourceExhausted,
            InferError::Timeout => Code::DeadlineExceeded,
            InferError::Abandoned => Code::Cancelled,
            InferError::Internal(_) => Code::Internal,
        },
        ApiError::PayloadTooLarge { .. } => Code::ResourceExhausted,
        ApiError::BodyTimeout(_) => Code::DeadlineExceeded,
        ApiError::Unauthorized(_) => Code::Unauthenticated,
        ApiError::NotFound | ApiError::UnknownModel(_) => Code::NotFound,
        ApiError::WrongModel(_) => Code::FailedPrecondition,
        ApiError::MethodNotAllowed => Code::Unimplemented,
        ApiError::ClientGone => Code::Cancelled,
        ApiError::Loading => Code::Unavailable,
        ApiError::Internal(_) => Code::Internal,
    }
}

/// The status `error` becomes; internal details are logged (under the request's span), never sent.
pub fn status(error: &ApiError) -> Status {
    let code = code(error);
    let rejection = error.rejection();
    if let Some(detail) = &rejection.detail {
        tracing::error!(error_type = rejection.error_type, "{detail}");
    }
    let message = if code == Code::Internal { "internal server error".to_string() } else { rejection.message };
    let retryable = code == Code::Unavailable || matches!(error, ApiError::Infer(InferError::RateLimited { .. }));
    match rejection.retry_after.filter(|_| retryable) {
        Some(after) => {
            let mut status = Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(after)));
            status.metadata_mut().insert("retry-after", MetadataValue::from(after.as_secs().max(1)));
            status
        }
        None => Status::new(code, message),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tokenize::InputError;
    use crate::worker::WorkerError;

    #[test]
    fn each_error_maps_once_to_its_code() {
        let cases = [
            (ApiError::Validation("x".into()), Code::InvalidArgument),
            (ApiError::from(InferError::Input { index: None, error: InputError::Empty }), Code::InvalidArgument),
            (ApiError::from(InferError::TooMuchWork { tokens: 9, max: 1 }), Code::ResourceExhausted),
            (ApiError::from(InferError::Timeout), Code::DeadlineExceeded),
            (ApiError::from(InferError::from(WorkerError::Expired)), Code::DeadlineExceeded),
            (ApiError::Unauthorized("missing API key"), Code::Unauthenticated),
            (ApiError::UnknownModel("m".into()), Code::NotFound),
            (ApiError::Loading, Code::Unavailable),
            (ApiError::from(InferError::Unavailable), Code::Unavailable),
        ];
        for (error, expected) in cases {
            assert_eq!(status(&error).code(), expected, "{error}");
        }
    }

    #[test]
    fn shedding_says_when_to_retry_and_internal_errors_say_nothing() {
        let s = status(&ApiError::from(InferError::Overloaded { retry_after: Duration::from_secs(7) }));
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.metadata().get("retry-after").unwrap(), "7");
        assert_eq!(s.get_details_retry_info().and_then(|r| r.retry_delay), Some(Duration::from_secs(7)));
        let s = status(&ApiError::from(InferError::from(WorkerError::Panicked("at src/model/mod.rs:42".into()))));
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal server error"));
        let s = status(&ApiError::from(InferError::TooMuchWork { tokens: 9, max: 1 }));
        assert!(s.metadata().get("retry-after").is_none(), "retrying cannot help");
        let s = status(&ApiError::from(InferError::RateLimited { retry_after: Duration::from_secs(3) }));
        assert_eq!(s.code(), Code::ResourceExhausted, "over quota, as HTTP's 429");
        assert_eq!(s.metadata().get("retry-after").unwrap(), "3", "when the tenant's bucket refills");
    }
}
