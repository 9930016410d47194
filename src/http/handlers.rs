//! Route handlers: thin adapters from the HTTP shapes to [`Infer::run`] and back. Each attaches the
//! request's [`BatchStats`] to its response for the access log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use serde_json::json;

use super::api::{
    EmbedRequest, EmbeddingValue, EncodingFormat, OpenAiEmbedding, OpenAiEmbeddingsRequest, OpenAiEmbeddingsResponse,
    OpenAiUsage, PredictRequest,
};
use super::error::{ApiError, OwnBody};
use super::layers::timeout::Deadline;
use super::parse::{parse_json, parse_text};
use super::state::AppState;
use crate::infer::{BatchStats, Infer, InferRequest, Inferred};
use crate::model::Task;
use crate::pipelines::{Output, Params};

type AppResult<T> = Result<T, ApiError>;

/// Runs `inputs` through the service under the request's deadline.
async fn run(infer: &Infer, Deadline(deadline): Deadline, inputs: Vec<String>, params: Params) -> AppResult<Inferred> {
    Ok(infer.run(InferRequest { inputs, params, deadline: Some(deadline) }).await?)
}

/// The service for an embedding route: only feature-extraction models have them.
fn embedding_service(state: &AppState) -> AppResult<&Infer> {
    let infer = state.infer()?;
    if infer.info().task != Task::FeatureExtraction {
        return Err(ApiError::NotFound);
    }
    Ok(infer)
}

/// `POST /`: the raw UTF-8 body is one input for the configured pipeline.
pub async fn raw_text(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<Output>)> {
    let text = parse_text(&body)?;
    let mut done = run(state.infer()?, deadline, vec![text], Params::default()).await?;
    Ok((Extension(done.stats), Json(done.outputs.remove(0))))
}

/// `POST /predict`: `{"inputs": str | [str], "parameters": {...}}`.
pub async fn predict(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let request: PredictRequest = parse_json(&headers, &body)?;
    let one = request.inputs.is_one();
    let mut done = run(state.infer()?, deadline, request.inputs.into_vec(), request.parameters).await?;
    let stats = Extension(done.stats);
    Ok(if one {
        (stats, Json(done.outputs.remove(0))).into_response()
    } else {
        (stats, Json(done.outputs)).into_response()
    })
}

/// `POST /embed` (text-embeddings-inference): pooled embeddings, normalized by default.
pub async fn embed(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<Vec<Vec<f32>>>)> {
    let infer = embedding_service(&state)?;
    let request: EmbedRequest = parse_json(&headers, &body)?;
    let params = embedding_params(infer, request.normalize.unwrap_or(true), request.truncate);
    let done = run(infer, deadline, request.inputs.into_vec(), params).await?;
    Ok((Extension(done.stats), Json(done.outputs.into_iter().map(into_embedding).collect())))
}

/// `POST /v1/embeddings` (OpenAI): pooled embeddings as the model's recipe says.
pub async fn openai_embeddings(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<OpenAiEmbeddingsResponse>)> {
    let infer = embedding_service(&state)?;
    let request: OpenAiEmbeddingsRequest = parse_json(&headers, &body)?;
    if request.dimensions.is_some() {
        return Err(ApiError::Validation("dimensions is not supported: the model has a fixed width".into()));
    }
    let params = embedding_params(infer, infer.info().pooling.normalize, None);
    let done = run(infer, deadline, request.input.into_vec(), params).await?;
    let data = done
        .outputs
        .into_iter()
        .map(into_embedding)
        .enumerate()
        .map(|(index, v)| OpenAiEmbedding {
            object: "embedding",
            index,
            embedding: match request.encoding_format {
                EncodingFormat::Float => EmbeddingValue::Float(v),
                EncodingFormat::Base64 => EmbeddingValue::Base64(
                    base64::engine::general_purpose::STANDARD
                        .encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
                ),
            },
        })
        .collect();
    let response = OpenAiEmbeddingsResponse {
        object: "list",
        data,
        // The model that answered, whatever name the client asked for.
        model: state.served_model_name.clone(),
        usage: OpenAiUsage { prompt_tokens: done.tokens, total_tokens: done.tokens },
    };
    Ok((Extension(done.stats), Json(response)))
}

/// `GET /info`.
pub async fn info(State(state): State<Arc<AppState>>) -> AppResult<Json<serde_json::Value>> {
    let infer = state.infer()?;
    let meta = infer.meta();
    let settings = infer.settings();
    Ok(Json(json!({
        "model": state.model_name,
        "served_model_name": state.served_model_name,
        "task": meta.task,
        "model_type": meta.model_type,
        "device": meta.device.to_string(),
        "dtype": meta.dtype.to_string(),
        "labels": meta.labels,
        "max_input_tokens": infer.tokenizer().max_len(),
        "auto_truncate": settings.auto_truncate,
        "pooling": infer.info().pooling.pooling.as_str(),
        "normalize": infer.info().pooling.normalize,
        "batching": state.batching,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// `GET /health/live`: the process is up (loading included) and, once loaded, its worker alive.
pub async fn live(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    if state.health.is_live() {
        (StatusCode::OK, Json(json!({"status": "alive"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Extension(OwnBody), Json(json!({"status": "worker stopped"}))).into_response()
    }
}

/// `GET /health/ready`: loaded, warmed, worker alive and not draining.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    if state.health.is_ready() {
        return (StatusCode::OK, Json(json!({"status": "ready"}))).into_response();
    }
    let status = if state.health.is_draining() {
        "draining"
    } else if !state.health.is_loaded() {
        "loading"
    } else {
        "not ready"
    };
    (StatusCode::SERVICE_UNAVAILABLE, Extension(OwnBody), Json(json!({"status": status}))).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}

/// Any path no route matches.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// A known path with a method it does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn embedding_params(infer: &Infer, normalize: bool, truncate: Option<bool>) -> Params {
    Params { pooling: Some(infer.info().pooling.pooling), normalize: Some(normalize), truncate, ..Params::default() }
}

fn into_embedding(output: Output) -> Vec<f32> {
    match output {
        Output::Embedding(v) => v,
        _ => Vec::new(),
    }
}
