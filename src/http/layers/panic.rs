//! A handler panic becomes a generic 500; the panic text goes to the log only.

use std::any::Any;

use axum::http::Response;
use axum::response::IntoResponse;

use crate::http::error::ApiError;

pub fn respond(panic: Box<dyn Any + Send + 'static>) -> Response<axum::body::Body> {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    ApiError::Internal(format!("handler panicked: {text}")).into_response()
}
