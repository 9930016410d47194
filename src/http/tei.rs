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
use crate::infer::{BatchStats, Infer, Inferred, Input};
use crate::model::Task;
use crate::pipelines::{ClassificationFn, Output, Params, Pooling, SparseValue, TopK};
use crate::tokenize::TruncationDirection;

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
    let options = TokenOptions { truncate: request.truncate, truncation_direction: request.truncation_direction };
    let (states, done) =
        token_states(infer, deadline, request.inputs.into_vec(), request.prompt_name.as_deref(), options).await?;
    Ok((Extension(done.stats), Json(states)))
}

/// How an `/embed_all`, `/embed_sparse` or `/rerank` call cuts its inputs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokenOptions {
    pub truncate: Option<bool>,
    pub truncation_direction: TruncationDirection,
}

/// The last hidden states of every token of each input (after its prompt), in order: `/embed_all`
/// and gRPC's `EmbedAll`.
pub(crate) async fn token_states(
    infer: &Infer,
    deadline: Deadline,
    inputs: Vec<Input>,
    prompt_name: Option<&str>,
    options: TokenOptions,
) -> AppResult<(Vec<Vec<Vec<f32>>>, Inferred)> {
    let inputs = prompted(infer, prompt_name, inputs)?;
    let params = Params {
        pooling: Some(Pooling::None),
        truncate: options.truncate,
        truncation_direction: Some(options.truncation_direction),
        ..Params::default()
    };
    let mut done = run(infer, deadline, inputs, params).await?;
    let states = std::mem::take(&mut done.outputs)
        .into_iter()
        .map(|output| match output {
            Output::TokenEmbeddings(mut one) if one.len() == 1 => Ok(one.remove(0)),
            _ => Err(ApiError::Internal("embed_all got no token states".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((states, done))
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
    let options = TokenOptions { truncate: request.truncate, truncation_direction: request.truncation_direction };
    let (sparse, done) =
        sparse_embeddings(infer, deadline, request.inputs.into_vec(), request.prompt_name.as_deref(), options).await?;
    Ok((Extension(done.stats), Json(sparse)))
}

/// The SPLADE weights of each input (after its prompt), in order: `/embed_sparse` and gRPC's
/// `EmbedSparse`.
pub(crate) async fn sparse_embeddings(
    infer: &Infer,
    deadline: Deadline,
    inputs: Vec<Input>,
    prompt_name: Option<&str>,
    options: TokenOptions,
) -> AppResult<(Vec<Vec<SparseValue>>, Inferred)> {
    let inputs = prompted(infer, prompt_name, inputs)?;
    let params = Params {
        pooling: Some(Pooling::Splade),
        truncate: options.truncate,
        truncation_direction: Some(options.truncation_direction),
        ..Params::default()
    };
    let mut done = run(infer, deadline, inputs, params).await?;
    let sparse = std::mem::take(&mut done.outputs)
        .into_iter()
        .map(|output| match output {
            Output::Sparse(weights) => Ok(weights),
            _ => Err(ApiError::Internal("embed_sparse got no sparse weights".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((sparse, done))
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
    let infer = reranker_service(&state)?;
    let request: RerankRequest = parse_json(&headers, &body)?;
    let pairs = request.texts.into_iter().map(|t| (request.query.clone(), t)).collect();
    let options = RankOptions {
        raw_scores: request.raw_scores,
        return_text: request.return_text,
        tokens: TokenOptions { truncate: request.truncate, truncation_direction: request.truncation_direction },
    };
    let (ranks, done) = rank(infer, deadline, pairs, options).await?;
    Ok((Extension(done.stats), Json(ranks)))
}

/// The service when it serves a re-ranker (a cross-encoder: one output); TEI's 424 otherwise.
pub(crate) fn reranker_service(state: &AppState) -> AppResult<&Infer> {
    let infer = state.infer()?;
    if infer.info().task != Task::TextClassification || infer.info().labels.len() != 1 {
        return Err(ApiError::WrongModel("a re-ranker"));
    }
    Ok(infer)
}

/// How a re-ranking scores and answers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RankOptions {
    /// The logit itself, not its sigmoid.
    pub raw_scores: bool,
    /// Each rank carries its text.
    pub return_text: bool,
    pub tokens: TokenOptions,
}

/// Scores each (query, text) pair, best first, each rank naming its pair's index: `/rerank` and
/// gRPC's `Rerank` and `RerankStream`.
pub(crate) async fn rank(
    infer: &Infer,
    deadline: Deadline,
    pairs: Vec<(String, String)>,
    options: RankOptions,
) -> AppResult<(Vec<Rank>, Inferred)> {
    let (inputs, texts): (Vec<Input>, Vec<String>) =
        pairs.into_iter().map(|(query, text)| (Input::Pair(query, text.clone()), text)).unzip();
    let params = Params {
        function_to_apply: Some(if options.raw_scores { ClassificationFn::None } else { ClassificationFn::Sigmoid }),
        top_k: TopK::All,
        truncate: options.tokens.truncate,
        truncation_direction: Some(options.tokens.truncation_direction),
        ..Params::default()
    };
    let mut done = run(infer, deadline, inputs, params).await?;
    let mut ranks = std::mem::take(&mut done.outputs)
        .into_iter()
        .zip(texts)
        .enumerate()
        .map(|(index, (output, text))| match output {
            Output::Labels(labels) if labels.len() == 1 => {
                Ok(Rank { index, text: options.return_text.then_some(text), score: labels[0].score })
            }
            _ => Err(ApiError::Internal("rerank got no single score".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    ranks.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok((ranks, done))
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
    Ok(Json(tokens(infer, request.inputs.into_vec(), request.prompt_name.as_deref(), request.add_special_tokens)?))
}

/// The tokens of each text (after its prompt) with byte offsets: `/tokenize` and gRPC's
/// `Tokenize`. Runs no model: over-long texts are tokenized whole.
pub(crate) fn tokens(
    infer: &Infer,
    inputs: Vec<Input>,
    prompt_name: Option<&str>,
    add_special_tokens: bool,
) -> AppResult<Vec<Vec<SimpleToken>>> {
    let max = infer.settings().max_client_batch_size;
    let inputs = prompted(infer, prompt_name, inputs)?;
    crate::infer::check_request(&inputs, &Params::default(), infer.info().task, max)?;
    let tokenizer = infer.tokenizer();
    let mut all = Vec::with_capacity(inputs.len());
    for input in inputs {
        let Input::Text(text) = input else {
            return Err(ApiError::Validation("/tokenize takes texts, not text pairs".into()));
        };
        let tokens = tokenizer
            .tokens(&text, add_special_tokens)
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
    Ok(all)
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
    Ok(Json(decode_ids(infer, &sequences, request.skip_special_tokens)?))
}

/// Each sequence of token ids back to text: `/decode` and gRPC's `Decode`.
pub(crate) fn decode_ids(infer: &Infer, sequences: &[Vec<u32>], skip_special_tokens: bool) -> AppResult<Vec<String>> {
    crate::infer::check_request(
        sequences,
        &Params::default(),
        infer.info().task,
        infer.settings().max_client_batch_size,
    )?;
    let tokenizer = infer.tokenizer();
    let vocab = tokenizer.vocab_size();
    if let Some(bad) = sequences.iter().flatten().find(|&&id| id as usize >= vocab) {
        return Err(ApiError::Validation(format!("token id {bad} is not in the model's vocabulary of {vocab} tokens")));
    }
    Ok(sequences.iter().map(|ids| tokenizer.decode(ids, skip_special_tokens)).collect())
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
