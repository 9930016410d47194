//! Request parsing and validation on arbitrary bytes: the first byte picks the route, content type
//! and task, the rest is the body. Never a panic; every rejection is a 4xx naming the problem.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use pipeserve::http::api::{EmbedRequest, OpenAiEmbeddingsRequest, PredictRequest};
use pipeserve::http::error::ApiError;
use pipeserve::http::parse::{parse_json, parse_text};
use pipeserve::infer::check_request;
use pipeserve::model::Task;
use pipeserve::pipelines::Params;

/// The checks a handler runs before the service tokenizes anything.
fn validate<T>(texts: &[T], params: &Params, task: Task, max: usize) -> Result<(), ApiError> {
    check_request(texts, params, task, max).map_err(ApiError::from)
}

const TASKS: [Task; 4] = [Task::FillMask, Task::FeatureExtraction, Task::TextClassification, Task::TokenClassification];
const CONTENT_TYPES: [Option<&str>; 4] = [None, Some("application/json"), Some("text/plain"), Some("application/x+json; charset=utf-8")];

fn check(result: Result<(), ApiError>) {
    if let Err(e) = result {
        let status = e.status();
        assert!(status.is_client_error(), "{status} for {e}");
        assert!(!e.to_string().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let task = TASKS[usize::from(selector & 3)];
    let mut headers = HeaderMap::new();
    if let Some(ct) = CONTENT_TYPES[usize::from((selector >> 2) & 3)] {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    let max = 32;
    check(match (selector >> 4) & 3 {
        0 => parse_text(body).and_then(|t| validate(&[t], &Params::default(), task, max)),
        1 => parse_json::<PredictRequest>(&headers, body)
            .and_then(|r| validate(&r.inputs.into_vec(), &r.parameters, task, max)),
        2 => parse_json::<EmbedRequest>(&headers, body).and_then(|r| validate(&r.inputs.into_vec(), &Params::default(), task, max)),
        _ => parse_json::<OpenAiEmbeddingsRequest>(&headers, body)
            .and_then(|r| validate(&r.input.into_vec(), &Params::default(), task, max)),
    });
});
