//! Request parsing and the checks that need no tokenizer, as pure functions of the headers and
//! the body: the handlers call them, and the fuzz targets (`fuzz/`) and property tests drive them
//! directly. Every failure is a 4xx [`ApiError`] naming the problem.

use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::model::Task;
use crate::pipelines::Params;

/// Parses a JSON body; a content type, when sent, must be JSON.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let value = content_type.to_str().unwrap_or_default();
        let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(value.chars().take(100).collect()));
        }
    }
    if body.is_empty() {
        return Err(ApiError::BadRequest("request body is empty: expected a JSON object".into()));
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))?;
    serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::BadRequest(format!("body is not valid JSON: {e}"))
        } else {
            ApiError::Validation(format!("invalid request: {e}"))
        }
    })
}

/// The raw-text route's body: one UTF-8 string.
pub fn parse_text(body: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))
}

/// The checks before admission: parameters fit the task, at least one input, not too many.
pub fn validate(texts: &[String], params: &Params, task: Task, max_client_batch_size: usize) -> Result<(), ApiError> {
    params.validate(task)?;
    if texts.is_empty() {
        return Err(ApiError::Validation("inputs is empty: send at least one string".into()));
    }
    if texts.len() > max_client_batch_size {
        return Err(ApiError::TooManyInputs { count: texts.len(), max: max_client_batch_size });
    }
    Ok(())
}
