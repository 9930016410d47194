//! Request parsing as pure functions of the headers and the body: the handlers call them, and the
//! fuzz targets (`fuzz/`) and property tests drive them directly (with the service's
//! [`crate::infer::check_request`]). Every failure is a 4xx [`ApiError`] naming the problem.

use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Parses a JSON body; a content type, when sent, must be JSON.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let value = content_type.to_str().unwrap_or_default();
        let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(value.chars().take(100).collect()));
        }
        // JSON is UTF-8 (RFC 8259); a body declared in another charset would be misread.
        let charset = value
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"));
        if let Some((_, charset)) = charset {
            let charset = charset.trim().trim_matches('"');
            if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                return Err(ApiError::UnsupportedMediaType(value.chars().take(100).collect()));
            }
        }
    }
    if body.is_empty() {
        return Err(ApiError::BadRequest("request body is empty: expected a JSON object".into()));
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))?;
    let syntax = |e: serde_json::Error| ApiError::BadRequest(format!("body is not valid JSON: {e}"));
    // serde would read a top-level array as a struct's fields in order (`["a"]` as `{"inputs": "a"}`).
    if !text.trim_start().starts_with('{') {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(syntax)?;
        return Err(ApiError::Validation("the body must be a JSON object".into()));
    }
    // Syntax first: an unknown field ahead of a malformed value must not turn a 400 into a 422.
    // (IgnoredAny skips without recursing, so deep nesting still reaches the typed parse.)
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(syntax)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        if e.is_syntax() || e.is_eof() {
            syntax(e)
        } else if path == "." || path.is_empty() {
            ApiError::Validation(format!("invalid request: {e}"))
        } else {
            ApiError::Validation(format!("invalid request: {path}: {e}"))
        }
    })?;
    // Only whitespace may follow the object.
    deserializer.end().map_err(syntax)?;
    Ok(value)
}

/// The raw-text route's body: one UTF-8 string.
pub fn parse_text(body: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))
}

/// A request's `priority` from its body (the Inference API's `options.priority`, KServe v2's
/// `parameters.priority`): a class name or a numeric level (Triton's, vLLM's); `None` for level 0.
pub fn priority(value: &serde_json::Value) -> Result<Option<crate::batching::Priority>, ApiError> {
    use crate::batching::Priority;
    let invalid = |e: String| ApiError::Validation(format!("priority: {e}"));
    match value {
        serde_json::Value::String(s) => Priority::parse(s).map_err(|e| invalid(e.to_string())),
        serde_json::Value::Number(n) => {
            n.as_i64().map(Priority::from_level).ok_or_else(|| invalid("not an integer".into()))
        }
        serde_json::Value::Null => Ok(None),
        _ => Err(invalid("use interactive, batch or a number".into())),
    }
}
