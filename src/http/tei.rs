//! The routes of text-embeddings-inference with its request and response shapes: `/embed`,
//! `/embed_all`, `/tokenize`, `/decode`, `/health`. Thin adapters over the one service.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::api::{
    DecodeRequest, EmbedAllRequest, EmbedRequest, EmbedSparseRequest, EncodingFormat, InputIds, Rank, RerankRequest,
    SimpleToken, TokenizeRequest,
};
use super::error::{ApiError, ErrorBody, OwnBody};
use super::handlers::{embed_inputs, embedding_service, prompted, run, sparse_service, AppResult, EmbedOptions};
use super::layers::timeout::Deadline;
use super::parse::parse_json;
use super::state::AppState;
use crate::infer::{BatchStats, Input};
use crate::model::Task;
use crate::pipelines::{ClassificationFn, Output, Params, Pooling, SparseValue, TopK};

/// `POST /embed`: pooled embeddings, normalized by default, `[[f32]]` whatever the input count.
#[utoipa::path(post, path = "/embed", tag = "TEI", request_body(content = EmbedRequest, content_type = "application/json"),
    responses((status = 200, description = "one vector per input", body = Vec<Vec<f32>>),
              (status = 424, description = "not an embedding model", body = ErrorBody)))]
pub async fn embed(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<Vec<Vec<f32>>>)> {
    let infer = embedding_service(&state)?;
    let request: EmbedRequest = parse_json(&headers, &body)?;
    let p = request.parameters.unwrap_or_default();
    if p.pooling.is_some() || p.encoding_format.is_some_and(|f| f != EncodingFormat::Float) {
        return Err(ApiError::Validation("/embed takes neither pooling nor a non-float encoding_format".into()));
    }
    let options = EmbedOptions {
        normalize: p.normalize.or(request.normalize).unwrap_or(true),
        truncate: p.truncate.or(request.truncate),
        truncation_direction: p.truncation_direction.unwrap_or(request.truncation_direction),
        prompt_name: p.prompt_name.or(request.prompt_name),
        dimensions: p.dimensions.or(request.dimensions),
    };
    let (vectors, done) = embed_inputs(infer, deadline, request.inputs.into_vec(), options).await?;
    Ok((Extension(done.stats), Json(vectors)))
}

/// `POST /embed_all`: the last hidden states of every token, `[inputs][tokens][hidden]`.
#[utoipa::path(post, path = "/embed_all", tag = "TEI", request_body(content = EmbedAllRequest, content_type = "application/json"),
    responses((status = 200, description = "`[inputs][tokens][hidden]`", body = Vec<Vec<Vec<f32>>>),
              (status = 424, description = "not an embedding model", body = ErrorBody)))]
pub async fn embed_all(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<Vec<Vec<Vec<f32>>>>)> {
    let infer = embedding_service(&state)?;
    let request: EmbedAllRequest = parse_json(&headers, &body)?;
    let inputs = prompted(infer, request.prompt_name.as_deref(), request.inputs.into_vec())?;
    let params = Params {
        pooling: Some(Pooling::None),
        truncate: request.truncate,
        truncation_direction: Some(request.truncation_direction),
        ..Params::default()
    };
    let done = run(infer, deadline, inputs, params).await?;
    let states = done
        .outputs
        .into_iter()
        .map(|output| match output {
            Output::TokenEmbeddings(mut one) if one.len() == 1 => Ok(one.remove(0)),
            _ => Err(ApiError::Internal("embed_all got no token states".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Extension(done.stats), Json(states)))
}

/// `POST /embed_sparse`: SPLADE sparse embeddings, `[[{"index", "value"}]]` whatever the input
/// count: each input's non-zero vocabulary weights by ascending token id. Other models answer
/// TEI's 424.
#[utoipa::path(post, path = "/embed_sparse", tag = "TEI", request_body(content = EmbedSparseRequest, content_type = "application/json"),
    responses((status = 200, description = "the non-zero weights of each input", body = Vec<Vec<SparseValue>>),
              (status = 424, description = "not a SPLADE model", body = ErrorBody)))]
pub async fn embed_sparse(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<Vec<Vec<SparseValue>>>)> {
    let infer = sparse_service(&state)?;
    let request: EmbedSparseRequest = parse_json(&headers, &body)?;
    let inputs = prompted(infer, request.prompt_name.as_deref(), request.inputs.into_vec())?;
    let params = Params {
        pooling: Some(Pooling::Splade),
        truncate: request.truncate,
        truncation_direction: Some(request.truncation_direction),
        ..Params::default()
    };
    let done = run(infer, deadline, inputs, params).await?;
    let sparse = done
        .outputs
        .into_iter()
        .map(|output| match output {
            Output::Sparse(weights) => Ok(weights),
            _ => Err(ApiError::Internal("embed_sparse got no sparse weights".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Extension(done.stats), Json(sparse)))
}

/// `POST /rerank`: a cross-encoder (a sequence-classification model with one output) scores each
/// (query, text) pair; sigmoid of the logit unless `raw_scores`, as sentence-transformers'
/// `CrossEncoder.predict` does. Best first. Other models answer TEI's 424.
#[utoipa::path(post, path = "/rerank", tag = "TEI", request_body(content = RerankRequest, content_type = "application/json"),
    responses((status = 200, description = "best first", body = Vec<Rank>),
              (status = 424, description = "not a re-ranker (cross-encoder) model", body = ErrorBody)))]
pub async fn rerank(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(Extension<BatchStats>, Json<Vec<Rank>>)> {
    let infer = state.infer()?;
    if infer.info().task != Task::TextClassification || infer.info().labels.len() != 1 {
        return Err(ApiError::WrongModel("a re-ranker"));
    }
    let request: RerankRequest = parse_json(&headers, &body)?;
    let inputs = request.texts.iter().map(|t| Input::Pair(request.query.clone(), t.clone())).collect();
    let params = Params {
        function_to_apply: Some(if request.raw_scores { ClassificationFn::None } else { ClassificationFn::Sigmoid }),
        top_k: TopK::All,
        truncate: request.truncate,
        truncation_direction: Some(request.truncation_direction),
        ..Params::default()
    };
    let done = run(infer, deadline, inputs, params).await?;
    let mut ranks = done
        .outputs
        .into_iter()
        .enumerate()
        .map(|(index, output)| match output {
            Output::Labels(labels) if labels.len() == 1 => Ok(Rank {
                index,
                text: request.return_text.then(|| request.texts[index].clone()),
                score: labels[0].score,
            }),
            _ => Err(ApiError::Internal("rerank got no single score".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    ranks.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok((Extension(done.stats), Json(ranks)))
}

/// `POST /tokenize`: the tokens of each input with byte offsets, as TEI returns them (always a
/// list of lists). Over-long inputs are tokenized whole: this route runs no model.
#[utoipa::path(post, path = "/tokenize", tag = "TEI", request_body(content = TokenizeRequest, content_type = "application/json"),
    responses((status = 200, description = "the tokens of each input", body = Vec<Vec<SimpleToken>>)))]
pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Json<Vec<Vec<SimpleToken>>>> {
    let infer = state.infer()?;
    let request: TokenizeRequest = parse_json(&headers, &body)?;
    let max = infer.settings().max_client_batch_size;
    let inputs = prompted(infer, request.prompt_name.as_deref(), request.inputs.into_vec())?;
    crate::infer::check_request(&inputs, &Params::default(), infer.info().task, max)?;
    let tokenizer = infer.tokenizer();
    let mut all = Vec::with_capacity(inputs.len());
    for input in inputs {
        let Input::Text(text) = input else {
            return Err(ApiError::Validation("/tokenize takes texts, not text pairs".into()));
        };
        let tokens = tokenizer
            .tokens(&text, request.add_special_tokens)
            .map_err(|e| ApiError::Validation(e.to_string()))?
            .into_iter()
            .map(|t| SimpleToken {
                id: t.id,
                text: t.text,
                special: t.special,
                start: t.byte_offsets.map(|o| o.0),
                stop: t.byte_offsets.map(|o| o.1),
            })
            .collect();
        all.push(tokens);
    }
    Ok(Json(all))
}

/// `POST /decode`: token ids back to text, one string per sequence (always a list).
#[utoipa::path(post, path = "/decode", tag = "TEI", request_body(content = DecodeRequest, content_type = "application/json"),
    responses((status = 200, description = "one text per sequence", body = Vec<String>)))]
pub async fn decode(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Json<Vec<String>>> {
    let infer = state.infer()?;
    let request: DecodeRequest = parse_json(&headers, &body)?;
    let sequences = match request.ids {
        InputIds::One(ids) => vec![ids],
        InputIds::Many(many) => many,
    };
    crate::infer::check_request(
        &sequences,
        &Params::default(),
        infer.info().task,
        infer.settings().max_client_batch_size,
    )?;
    let tokenizer = infer.tokenizer();
    let vocab = tokenizer.vocab_size();
    if let Some(bad) = sequences.iter().flatten().find(|&&id| id as usize >= vocab) {
        return Err(ApiError::Validation(format!("token id {bad} is not in the model's vocabulary of {vocab} tokens")));
    }
    Ok(Json(sequences.iter().map(|ids| tokenizer.decode(ids, request.skip_special_tokens)).collect()))
}

/// `GET /health` (TEI): 200 with an empty body while the model serves, else 503.
#[utoipa::path(get, path = "/health", tag = "Health",
    responses((status = 200, description = "serving (empty body)"), (status = 503, description = "not serving")))]
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    if state.health.is_ready() {
        StatusCode::OK.into_response()
    } else {
        let body = serde_json::json!({"error": "unhealthy", "error_type": "unhealthy"});
        (StatusCode::SERVICE_UNAVAILABLE, Extension(OwnBody), Json(body)).into_response()
    }
}
