//! Route handlers. Every inference route funnels into [`infer`]: validate, admit, tokenize off the
//! runtime, queue each input, await the worker's answers, post-process off the runtime.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::json;

use super::api::{
    EmbedRequest, EmbeddingValue, EncodingFormat, OpenAiEmbedding, OpenAiEmbeddingsRequest,
    OpenAiEmbeddingsResponse, OpenAiUsage, PredictRequest,
};
use super::error::ApiError;
use super::layers::access_log;
use super::parse::{parse_json, parse_text, validate};
use super::state::AppState;
use crate::engine::prepare;
use crate::pipelines::{self, Output, Params};
use crate::tokenize::Encoded;

type AppResult<T> = Result<T, ApiError>;

/// `POST /`: the raw UTF-8 body is one input for the configured pipeline.
pub async fn raw_text(State(state): State<Arc<AppState>>, body: Bytes) -> AppResult<Json<Output>> {
    let text = parse_text(&body)?;
    let mut outputs = infer(&state, vec![text], Params::default()).await?;
    Ok(Json(outputs.remove(0)))
}

/// `POST /predict`: `{"inputs": str | [str], "parameters": {...}}`.
pub async fn predict(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> AppResult<Response> {
    let request: PredictRequest = parse_json(&headers, &body)?;
    let one = request.inputs.is_one();
    let mut outputs = infer(&state, request.inputs.into_vec(), request.parameters).await?;
    Ok(if one { Json(outputs.remove(0)).into_response() } else { Json(outputs).into_response() })
}

/// `POST /embed` (text-embeddings-inference): pooled embeddings, normalized by default.
pub async fn embed(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> AppResult<Json<Vec<Vec<f32>>>> {
    let request: EmbedRequest = parse_json(&headers, &body)?;
    let params = embedding_params(&state, request.normalize.unwrap_or(true), request.truncate);
    let outputs = infer(&state, request.inputs.into_vec(), params).await?;
    Ok(Json(outputs.into_iter().map(into_embedding).collect()))
}

/// `POST /v1/embeddings` (OpenAI): pooled embeddings as the model's recipe says.
pub async fn openai_embeddings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Json<OpenAiEmbeddingsResponse>> {
    let request: OpenAiEmbeddingsRequest = parse_json(&headers, &body)?;
    if request.dimensions.is_some() {
        return Err(ApiError::Validation("dimensions is not supported: the model has a fixed width".into()));
    }
    let params = embedding_params(&state, state.info.pooling.normalize, None);
    let texts = request.input.into_vec();
    let (outputs, tokens) = infer_counting(&state, texts, params).await?;
    let data = outputs
        .into_iter()
        .map(into_embedding)
        .enumerate()
        .map(|(index, v)| OpenAiEmbedding {
            object: "embedding",
            index,
            embedding: match request.encoding_format {
                EncodingFormat::Float => EmbeddingValue::Float(v),
                EncodingFormat::Base64 => EmbeddingValue::Base64(
                    base64::engine::general_purpose::STANDARD.encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
                ),
            },
        })
        .collect();
    Ok(Json(OpenAiEmbeddingsResponse {
        object: "list",
        data,
        model: request.model.unwrap_or_else(|| state.model_name.clone()),
        usage: OpenAiUsage { prompt_tokens: tokens, total_tokens: tokens },
    }))
}

/// `GET /info`.
pub async fn info(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let meta = &state.meta;
    Json(json!({
        "model": state.model_name,
        "task": meta.task,
        "model_type": meta.model_type,
        "device": meta.device.to_string(),
        "dtype": meta.dtype.to_string(),
        "labels": meta.labels,
        "max_input_tokens": state.tokenizer.max_len(),
        "auto_truncate": state.auto_truncate,
        "pooling": state.info.pooling.pooling.as_str(),
        "normalize": state.info.pooling.normalize,
        "batching": state.batching,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /health/live`: the process and its worker thread are alive.
pub async fn live(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    if state.health.is_live() {
        (StatusCode::OK, Json(json!({"status": "alive"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "worker stopped"}))).into_response()
    }
}

/// `GET /health/ready`: loaded, warmed, worker alive and not draining.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    if state.health.is_ready() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        let status = if state.health.is_draining() { "draining" } else { "not ready" };
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": status}))).into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    state.metrics.queue_depth.set(state.batcher.depth() as i64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}

fn embedding_params(state: &AppState, normalize: bool, truncate: Option<bool>) -> Params {
    Params {
        pooling: Some(state.info.pooling.pooling),
        normalize: Some(normalize),
        truncate,
        ..Params::default()
    }
}

fn into_embedding(output: Output) -> Vec<f32> {
    match output {
        Output::Embedding(v) => v,
        _ => Vec::new(),
    }
}

/// Runs the configured pipeline on `texts`; one output per text, in order.
pub async fn infer(state: &Arc<AppState>, texts: Vec<String>, params: Params) -> AppResult<Vec<Output>> {
    Ok(infer_counting(state, texts, params).await?.0)
}

/// [`infer`], also returning the number of tokens the inputs took.
async fn infer_counting(state: &Arc<AppState>, texts: Vec<String>, mut params: Params) -> AppResult<(Vec<Output>, usize)> {
    let started = Instant::now();
    let task = state.info.task;
    let slots = tracing::debug_span!("validate", inputs = texts.len() as i64).in_scope(|| {
        validate(&texts, &params, task, state.batching.max_client_batch_size)?;
        params.truncate = Some(params.truncate.unwrap_or(state.auto_truncate));
        // Admission before tokenization: a full queue costs neither the tokenizer nor the model.
        Ok::<_, ApiError>(state.batcher.admit(texts.len()).inspect_err(|_| state.metrics.shed.inc())?)
    })?;

    let tokenizer = state.tokenizer.clone();
    let many = texts.len() > 1;
    let params = Arc::new(params);
    let encoded: Vec<Encoded> = {
        let params = params.clone();
        let tokenize_start = Instant::now();
        let span = tracing::debug_span!("tokenize");
        let result = tokio::task::spawn_blocking(move || {
            let _span = span.entered();
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    prepare(&tokenizer, task, t, &params).map_err(|e| {
                        if many {
                            ApiError::Validation(format!("inputs[{i}]: {e}"))
                        } else {
                            ApiError::Input(e)
                        }
                    })
                })
                .collect::<AppResult<Vec<_>>>()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("tokenization task failed: {e}")))?;
        state.metrics.tokenization_duration.observe(tokenize_start.elapsed().as_secs_f64());
        result?
    };
    let tokens = encoded.iter().map(Encoded::len).sum();

    let expires = started + state.batching.request_timeout;
    let receivers = encoded
        .iter()
        .zip(slots)
        .map(|(e, slot)| state.batcher.submit(slot, e.ids.clone(), e.type_ids.clone(), expires))
        .collect::<Result<Vec<_>, _>>()?;
    let mut raws = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        let answer = receiver.await.map_err(|_| ApiError::Internal("worker dropped the request".into()))??;
        // The request's log line shows its slowest input's wait and its largest batch.
        access_log::record_batch(answer.queue_wait, answer.batch_size);
        raws.push(answer.output);
    }

    let info = state.info.clone();
    let tokenizer = state.tokenizer.clone();
    let span = tracing::debug_span!("postprocess");
    let outputs = tokio::task::spawn_blocking(move || {
        let _span = span.entered();
        encoded
            .iter()
            .zip(raws)
            .map(|(e, raw)| {
                pipelines::postprocess(&info, &tokenizer, e, raw, &params).map_err(|e| ApiError::Internal(e.to_string()))
            })
            .collect::<AppResult<Vec<_>>>()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("post-processing task failed: {e}")))??;
    Ok((outputs, tokens))
}
