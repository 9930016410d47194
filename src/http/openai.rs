//! OpenAI's embeddings API: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}`,
//! and errors on `/v1/*` in OpenAI's shape `{"error": {"message", "type", "param", "code"}}`, so
//! the SDK shows the reason instead of a bare status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use base64::Engine as _;
use serde::Serialize;

use super::api::{
    EmbeddingValue, EncodingFormat, OpenAiEmbedding, OpenAiEmbeddingsRequest, OpenAiEmbeddingsResponse, OpenAiUsage,
};
use super::error::{ApiError, Rejection};
use super::handlers::{embed_inputs, embedding_service, AppResult, EmbedOptions};
use super::layers::timeout::Deadline;
use super::parse::parse_json;
use super::state::AppState;
use crate::infer::BatchStats;

/// `POST /v1/embeddings`: pooled embeddings as the model's recipe says; `dimensions` keeps the
/// first values and re-normalizes.
#[utoipa::path(post, path = "/v1/embeddings", tag = "OpenAI", request_body(content = OpenAiEmbeddingsRequest, content_type = "application/json"),
    responses((status = 200, body = OpenAiEmbeddingsResponse),
              (status = 424, description = "not an embedding model", body = OpenAiErrorBody)))]
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<OpenAiEmbeddingsResponse>)> {
    let infer = embedding_service(&state)?;
    let request: OpenAiEmbeddingsRequest = parse_json(&headers, &body)?;
    let options = EmbedOptions {
        // OpenAI's embeddings are unit vectors; a model whose recipe does not normalize keeps its
        // own vectors unless dimensions asks for a cut (then they are re-normalized, as OpenAI's).
        normalize: infer.info().pooling.normalize || request.dimensions.is_some(),
        dimensions: request.dimensions,
        ..EmbedOptions::default()
    };
    let (vectors, done) = embed_inputs(infer, deadline, request.input.into_vec(), options).await?;
    let data = vectors
        .into_iter()
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

/// One entry of `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelCard {
    pub id: String,
    #[schema(value_type = String)]
    pub object: &'static str,
    /// Unix seconds; the server does not know when the model was made.
    pub created: u64,
    #[schema(value_type = String)]
    pub owned_by: &'static str,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    #[schema(value_type = String)]
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

fn card(state: &AppState) -> ModelCard {
    ModelCard { id: state.served_model_name.clone(), object: "model", created: 0, owned_by: "pipeserve" }
}

/// `GET /v1/models`: the one served model.
#[utoipa::path(get, path = "/v1/models", tag = "OpenAI", responses((status = 200, body = ModelList)))]
pub async fn models(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList { object: "list", data: vec![card(&state)] })
}

/// `GET /v1/models/{model}`: the served model by name; any other name is a 404.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "OpenAI", params(("model" = String, Path, description = "the served model's name")),
    responses((status = 200, body = ModelCard), (status = 404, description = "another name", body = OpenAiErrorBody)))]
pub async fn model(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<ModelCard>, ApiError> {
    if name == state.served_model_name {
        Ok(Json(card(&state)))
    } else {
        Err(ApiError::NotFound)
    }
}

/// The body of an error on a `/v1/*` route, in OpenAI's shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiError,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAiError {
    pub message: String,
    /// OpenAI's error class (`invalid_request_error`, `authentication_error`, ...).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// Always null: errors are not tied to one parameter here.
    pub param: Option<String>,
    /// Our stable `error_type`.
    #[schema(value_type = String)]
    pub code: &'static str,
}

/// The OpenAI-shaped body of an error on a `/v1/*` route; `code` is our stable `error_type`.
pub fn error_body(rejection: &Rejection) -> OpenAiErrorBody {
    let kind = match rejection.status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        s if s.is_server_error() => "server_error",
        _ => "invalid_request_error",
    };
    OpenAiErrorBody {
        error: OpenAiError { message: rejection.message.clone(), kind, param: None, code: rejection.error_type },
    }
}
