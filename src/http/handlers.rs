//! Route handlers: thin adapters from the HTTP shapes to [`Infer::run`] and back. Each attaches the
//! request's [`BatchStats`] to its response for the access log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::error::{ApiError, OwnBody};
use super::layers::timeout::Deadline;
use super::parse::parse_text;
use super::state::AppState;
use crate::infer::{BatchStats, Infer, InferRequest, Inferred, Input};
use crate::model::Task;
use crate::pipelines::{Output, Params};
use crate::tokenize::TruncationDirection;

pub(crate) type AppResult<T> = Result<T, ApiError>;

/// Runs `inputs` through the service under the request's deadline.
pub(crate) async fn run(
    infer: &Infer,
    Deadline { at, caller }: Deadline,
    inputs: Vec<Input>,
    params: Params,
) -> AppResult<Inferred> {
    Ok(infer.run(InferRequest { inputs, params, deadline: Some(at), caller }).await?)
}

/// The service for an embedding route: only feature-extraction models have them (others get
/// TEI's 424).
pub(crate) fn embedding_service(state: &AppState) -> AppResult<&Infer> {
    let infer = state.infer()?;
    if infer.info().task != Task::FeatureExtraction {
        return Err(ApiError::WrongModel("an embedding"));
    }
    dense_only(infer)?;
    Ok(infer)
}

/// A SPLADE model has sparse embeddings only (`/embed_sparse`): TEI's 424 on the dense routes.
fn dense_only(infer: &Infer) -> AppResult<()> {
    if infer.info().pooling.pooling == crate::pipelines::Pooling::Splade {
        return Err(ApiError::WrongModel("a dense embedding (this SPLADE model serves /embed_sparse)"));
    }
    Ok(())
}

/// The service when it serves SPLADE sparse embeddings; TEI's 424 otherwise.
pub(crate) fn sparse_service(state: &AppState) -> AppResult<&Infer> {
    let infer = state.infer()?;
    if infer.info().task != Task::FeatureExtraction || infer.info().pooling.pooling != crate::pipelines::Pooling::Splade
    {
        return Err(ApiError::WrongModel("a SPLADE (sparse embedding, --pooling splade)"));
    }
    Ok(infer)
}

/// `POST /` without a JSON content type: the raw UTF-8 body is one input for the configured
/// pipeline (the seed's contract). With one, [`super::inference_api::root`] answers instead.
pub async fn raw_text(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<Output>)> {
    let text = parse_text(&body)?;
    let mut done = run(state.infer()?, deadline, vec![Input::Text(text)], Params::default()).await?;
    Ok((Extension(done.stats), Json(done.outputs.remove(0))))
}

/// `GET /info`: ours and text-embeddings-inference's fields (`model_id`, `model_type` as TEI's
/// object, `max_input_length`, ...), so TEI clients read it too.
#[utoipa::path(get, path = "/info", tag = "Health",
    responses((status = 200, description = "the served model and settings, TEI's fields among ours", body = Object)))]
pub async fn info(State(state): State<Arc<AppState>>) -> AppResult<Json<serde_json::Value>> {
    let infer = state.infer()?;
    let meta = infer.meta();
    let settings = infer.settings();
    let pipeline = infer.info();
    let model_type = match meta.task {
        Task::FeatureExtraction => json!({"embedding": {"pooling": pipeline.pooling.pooling.as_str()}}),
        _ => {
            let id2label: serde_json::Map<String, serde_json::Value> =
                meta.labels.iter().enumerate().map(|(i, l)| (i.to_string(), json!(l))).collect();
            let label2id: serde_json::Map<String, serde_json::Value> =
                meta.labels.iter().enumerate().map(|(i, l)| (l.clone(), json!(i))).collect();
            json!({"classifier": {"id2label": id2label, "label2id": label2id}})
        }
    };
    Ok(Json(json!({
        "model": state.model_name,
        "served_model_name": state.served_model_name,
        "task": meta.task,
        "architecture": meta.model_type,
        "device": meta.device.to_string(),
        "dtype": meta.dtype.to_string(),
        "gemm": meta.gemm.to_string(),
        "packed": meta.packed,
        "labels": meta.labels,
        "max_input_tokens": infer.tokenizer().max_len(),
        "auto_truncate": settings.auto_truncate,
        "pooling": pipeline.pooling.pooling.as_str(),
        "normalize": pipeline.pooling.normalize,
        "prompts": pipeline.prompts.prompts,
        "default_prompt_name": pipeline.prompts.default_prompt_name,
        "batching": state.batching,
        "version": env!("CARGO_PKG_VERSION"),
        // text-embeddings-inference's names for the same facts.
        "model_id": state.model_name,
        "model_sha": null,
        "model_dtype": meta.dtype.to_string(),
        "model_type": model_type,
        "max_concurrent_requests": state.batching.max_queue,
        "max_input_length": infer.tokenizer().max_len(),
        "max_batch_tokens": state.batching.max_batch_tokens,
        "max_batch_requests": state.batching.max_batch_size,
        "max_client_batch_size": settings.max_client_batch_size,
        "tokenization_workers": null,
        "sha": null,
        "docker_label": null,
    })))
}

/// `GET /health/live`: the process is up (loading included) and, once loaded, its worker alive.
#[utoipa::path(get, path = "/health/live", tag = "Health",
    responses((status = 200, description = "alive"), (status = 503, description = "the worker stopped")))]
pub async fn live(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    if state.health.is_live() {
        (StatusCode::OK, Json(json!({"status": "alive"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Extension(OwnBody), Json(json!({"status": "worker stopped"}))).into_response()
    }
}

/// `GET /health/ready`: loaded, warmed, worker alive and not draining.
#[utoipa::path(get, path = "/health/ready", tag = "Health",
    responses((status = 200, description = "ready"), (status = 503, description = "loading, draining or not ready")))]
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
#[utoipa::path(get, path = "/metrics", tag = "Health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
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

/// How a pooled-embedding route wants its vectors.
#[derive(Debug, Clone, Default)]
pub(crate) struct EmbedOptions {
    pub normalize: bool,
    pub truncate: Option<bool>,
    pub truncation_direction: TruncationDirection,
    /// A prompt of `config_sentence_transformers.json`; `None`: the model's default prompt.
    pub prompt_name: Option<String>,
    /// Keep the first `dimensions` values, then normalize (when `normalize`).
    pub dimensions: Option<usize>,
}

/// Pooled sentence embeddings as the model's sentence-transformers recipe makes them (prompt,
/// pooling), then cut to `dimensions` and normalized as asked. One vector per input, in order.
pub(crate) async fn embed_inputs(
    infer: &Infer,
    deadline: Deadline,
    inputs: Vec<Input>,
    options: EmbedOptions,
) -> AppResult<(Vec<Vec<f32>>, Inferred)> {
    dense_only(infer)?;
    if options.dimensions == Some(0) {
        return Err(ApiError::Validation("dimensions must be at least 1".into()));
    }
    let inputs = prompted(infer, options.prompt_name.as_deref(), inputs)?;
    let prompt_tokens = match infer.info().prompts.resolve(options.prompt_name.as_deref()) {
        Ok(Some(prompt)) if !infer.info().pooling.include_prompt => {
            crate::pipelines::prompts::prompt_tokens(infer.tokenizer(), prompt)
        }
        _ => 0,
    };
    let params = Params {
        prompt_tokens,
        pooling: Some(infer.info().pooling.pooling),
        // Normalized after the cut when dimensions is set.
        normalize: Some(options.normalize && options.dimensions.is_none()),
        truncate: options.truncate,
        truncation_direction: Some(options.truncation_direction),
        ..Params::default()
    };
    let mut done = run(infer, deadline, inputs, params).await?;
    let mut vectors = Vec::with_capacity(done.outputs.len());
    for output in std::mem::take(&mut done.outputs) {
        let Output::Embedding(mut v) = output else {
            return Err(ApiError::Internal("the embedding route got no pooled embedding".into()));
        };
        if let Some(d) = options.dimensions {
            if d > v.len() {
                return Err(ApiError::Validation(format!(
                    "dimensions is {d}, above the model's embedding width of {}",
                    v.len()
                )));
            }
            v.truncate(d);
            if options.normalize {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        vectors.push(v);
    }
    Ok((vectors, done))
}

/// Prepends the named (or default) prompt of the model to every text input.
pub(crate) fn prompted(infer: &Infer, prompt_name: Option<&str>, inputs: Vec<Input>) -> AppResult<Vec<Input>> {
    let prompts = &infer.info().prompts;
    let prompt = prompts.resolve(prompt_name).map_err(|e| ApiError::Validation(e.to_string()))?;
    Ok(match prompt {
        Some(prompt) if !prompt.is_empty() => inputs
            .into_iter()
            .map(|input| match input {
                Input::Text(t) => Input::Text(format!("{prompt}{t}")),
                other => other,
            })
            .collect(),
        _ => inputs,
    })
}
