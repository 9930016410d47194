//! Hugging Face text-embeddings-inference's gRPC API (`tei.v1`: `Info`, `Embed`, `Predict`,
//! `Rerank`, `Tokenize`), a thin adapter over the cores of TEI's REST routes ([`crate::http::tei`]
//! and [`crate::http::handlers`]), so both answer the same. Every call, and every message of a
//! stream, goes through the one edge ([`Edge`]).
//!
//! Where proto3 cannot tell "false" from "not sent" the field is read as TEI's own server reads it:
//! `truncate: false` leaves truncation to `--auto-truncate`; `add_special_tokens` and
//! `skip_special_tokens` are taken as sent. A field we cannot honour (an unknown
//! `truncation_direction`, a pair that is not two texts) is INVALID_ARGUMENT; a service the served
//! model has no head for answers what REST answers (FAILED_PRECONDITION, REST's 424).

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use super::call::{Answers, Call, Edge, Guard, Handled};
use super::pb::tei as pb;
use crate::http::error::ApiError;
use crate::http::handlers::{embed_inputs, embedding_service, sparse_service, AppResult, EmbedOptions};
use crate::http::state::AppState;
use crate::http::tei::{
    decode_ids, rank, reranker_service, sparse_embeddings, token_states, tokens, RankOptions, TokenOptions,
};
use crate::infer::{Inferred, Input};
use crate::model::Task;
use crate::pipelines::{ClassificationFn, Output, Params, TopK};
use crate::tokenize::TruncationDirection;

/// The `tei.v1` services, each a handle on the one edge.
#[derive(Clone)]
pub struct Tei {
    edge: Arc<Edge>,
}

impl Tei {
    pub fn new(edge: Arc<Edge>) -> Self {
        Self { edge }
    }

    /// One unary call of `method` through the edge.
    async fn unary<T, R, F, Fut>(
        &self,
        method: &'static str,
        guard: Guard,
        request: Request<T>,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Arc<AppState>, Call, T) -> Fut,
        Fut: Future<Output = Handled<R>>,
    {
        let state = self.edge.state.clone();
        self.edge.unary(method, guard, request, |call, r| handler(state, call, r)).await
    }

    /// A stream of `method`: each message one inference call through the edge, answered in order.
    fn stream<T, R, F, Fut>(
        &self,
        method: &'static str,
        guard: Guard,
        request: Request<Streaming<T>>,
        handler: F,
    ) -> Answered<R>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(Arc<AppState>, Call, T) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Handled<R>> + Send + 'static,
    {
        let state = self.edge.state.clone();
        Ok(self.edge.stream(method, guard, request, move |call, r| handler(state.clone(), call, r)))
    }
}

type Answered<R> = Result<Response<Answers<R>>, Status>;

/// `truncate: true` cuts over-long inputs; `false` (also proto3's "not sent") leaves it to
/// `--auto-truncate`, as REST's absent field does.
fn truncate(truncate: bool) -> Option<bool> {
    truncate.then_some(true)
}

/// The proto's `TruncationDirection`; an unknown value is refused, not read as the default.
fn direction(value: i32) -> AppResult<TruncationDirection> {
    match pb::TruncationDirection::try_from(value) {
        Ok(pb::TruncationDirection::Right) => Ok(TruncationDirection::Right),
        Ok(pb::TruncationDirection::Left) => Ok(TruncationDirection::Left),
        Err(_) => Err(ApiError::Validation(format!("truncation_direction {value} is not RIGHT (0) or LEFT (1)"))),
    }
}

fn token_options(truncate_: bool, truncation_direction: i32) -> AppResult<TokenOptions> {
    Ok(TokenOptions { truncate: truncate(truncate_), truncation_direction: direction(truncation_direction)? })
}

/// What the call cost, in TEI's `Metadata`: the characters and tokens of its inputs, the time from
/// `started` and in the queue. Tokenization and inference are not timed per call (0).
fn metadata(chars: usize, done: &Inferred, started: Instant) -> Option<pb::Metadata> {
    Some(pb::Metadata {
        compute_chars: chars as u32,
        compute_tokens: done.tokens as u32,
        total_time_ns: started.elapsed().as_nanos() as u64,
        tokenization_time_ns: 0,
        queue_time_ns: done.stats.queue_wait.as_nanos() as u64,
        inference_time_ns: 0,
    })
}

async fn embed(state: Arc<AppState>, call: Call, r: pb::EmbedRequest) -> Handled<pb::EmbedResponse> {
    let started = Instant::now();
    let infer = embedding_service(&state)?;
    let options = EmbedOptions {
        normalize: r.normalize.unwrap_or(true),
        truncate: truncate(r.truncate),
        truncation_direction: direction(r.truncation_direction)?,
        prompt_name: r.prompt_name,
        dimensions: r.dimensions.map(|d| d as usize),
    };
    let chars = r.inputs.chars().count();
    let (mut vectors, done) = embed_inputs(infer, call.deadline, vec![Input::Text(r.inputs)], options).await?;
    let answer = pb::EmbedResponse { embeddings: vectors.remove(0), metadata: metadata(chars, &done, started) };
    Ok((answer, Some(done.stats)))
}

async fn embed_sparse(state: Arc<AppState>, call: Call, r: pb::EmbedSparseRequest) -> Handled<pb::EmbedSparseResponse> {
    let started = Instant::now();
    let infer = sparse_service(&state)?;
    let options = token_options(r.truncate, r.truncation_direction)?;
    let chars = r.inputs.chars().count();
    let inputs = vec![Input::Text(r.inputs)];
    let (mut sparse, done) = sparse_embeddings(infer, call.deadline, inputs, r.prompt_name.as_deref(), options).await?;
    let sparse_embeddings =
        sparse.remove(0).into_iter().map(|v| pb::SparseValue { index: v.index, value: v.value }).collect();
    let answer = pb::EmbedSparseResponse { sparse_embeddings, metadata: metadata(chars, &done, started) };
    Ok((answer, Some(done.stats)))
}

async fn embed_all(state: Arc<AppState>, call: Call, r: pb::EmbedAllRequest) -> Handled<pb::EmbedAllResponse> {
    let started = Instant::now();
    let infer = embedding_service(&state)?;
    let options = token_options(r.truncate, r.truncation_direction)?;
    let chars = r.inputs.chars().count();
    let inputs = vec![Input::Text(r.inputs)];
    let (mut states, done) = token_states(infer, call.deadline, inputs, r.prompt_name.as_deref(), options).await?;
    let token_embeddings = states.remove(0).into_iter().map(|embeddings| pb::TokenEmbedding { embeddings }).collect();
    let answer = pb::EmbedAllResponse { token_embeddings, metadata: metadata(chars, &done, started) };
    Ok((answer, Some(done.stats)))
}

/// Every label of a sequence-classification model, best first (REST's `/predict` with
/// `top_k: null`); `raw_scores`: the logits (`function_to_apply: "none"`).
async fn classify(
    state: &AppState,
    call: Call,
    input: Input,
    options: (bool, bool, i32),
) -> Handled<pb::PredictResponse> {
    let started = Instant::now();
    let (truncate_, raw_scores, truncation_direction) = options;
    let infer = state.infer()?;
    if infer.info().task != Task::TextClassification {
        return Err(ApiError::WrongModel("a classifier"));
    }
    let chars = match &input {
        Input::Text(t) => t.chars().count(),
        Input::Pair(a, b) => a.chars().count() + b.chars().count(),
        Input::Ids(_) => 0,
    };
    let params = Params {
        top_k: TopK::All,
        function_to_apply: raw_scores.then_some(ClassificationFn::None),
        truncate: truncate(truncate_),
        truncation_direction: Some(direction(truncation_direction)?),
        ..Params::default()
    };
    let mut done = crate::http::handlers::run(infer, call.deadline, vec![input], params).await?;
    let Some(Output::Labels(labels)) = done.outputs.pop() else {
        return Err(ApiError::Internal("predict got no labels".into()));
    };
    let predictions = labels.into_iter().map(|l| pb::Prediction { score: l.score, label: l.label }).collect();
    let answer = pb::PredictResponse { predictions, metadata: metadata(chars, &done, started) };
    Ok((answer, Some(done.stats)))
}

async fn predict(state: Arc<AppState>, call: Call, r: pb::PredictRequest) -> Handled<pb::PredictResponse> {
    classify(&state, call, Input::Text(r.inputs), (r.truncate, r.raw_scores, r.truncation_direction)).await
}

async fn predict_pair(state: Arc<AppState>, call: Call, r: pb::PredictPairRequest) -> Handled<pb::PredictResponse> {
    let options = (r.truncate, r.raw_scores, r.truncation_direction);
    let Ok([text, pair]) = <[String; 2]>::try_from(r.inputs) else {
        return Err(ApiError::Validation("inputs must be a pair: exactly two texts".into()));
    };
    classify(&state, call, Input::Pair(text, pair), options).await
}

/// The ranks, as TEI's `Rank` (index as `u32`).
fn ranks(ranks: Vec<crate::http::api::Rank>) -> Vec<pb::Rank> {
    ranks.into_iter().map(|r| pb::Rank { index: r.index as u32, text: r.text, score: r.score }).collect()
}

async fn rerank(state: Arc<AppState>, call: Call, r: pb::RerankRequest) -> Handled<pb::RerankResponse> {
    let started = Instant::now();
    let infer = reranker_service(&state)?;
    let options = RankOptions {
        raw_scores: r.raw_scores,
        return_text: r.return_text,
        tokens: token_options(r.truncate, r.truncation_direction)?,
    };
    let chars = r.query.chars().count() * r.texts.len() + r.texts.iter().map(|t| t.chars().count()).sum::<usize>();
    let pairs = r.texts.into_iter().map(|t| (r.query.clone(), t)).collect();
    let (ranked, done) = rank(infer, call.deadline, pairs, options).await?;
    let answer = pb::RerankResponse { ranks: ranks(ranked), metadata: metadata(chars, &done, started) };
    Ok((answer, Some(done.stats)))
}

/// `RerankStream`: one (query, text) pair per message, ranked together as one call once the
/// client ends its side; `raw_scores`, `return_text`, `truncate` and `truncation_direction` are
/// the first message's (TEI's rule). More pairs than `--max-client-batch-size` are refused.
async fn rerank_stream(
    state: Arc<AppState>,
    call: Call,
    mut inbound: Streaming<pb::RerankStreamRequest>,
) -> Handled<pb::RerankResponse> {
    let started = Instant::now();
    let infer = reranker_service(&state)?;
    let max = infer.settings().max_client_batch_size;
    let mut first = None;
    let mut pairs = Vec::new();
    while let Some(message) = inbound.message().await.map_err(|s| ApiError::BadRequest(s.message().to_string()))? {
        if pairs.len() == max {
            return Err(crate::infer::InferError::TooManyInputs { count: max + 1, max }.into());
        }
        if first.is_none() {
            first = Some((message.raw_scores, message.return_text, message.truncate, message.truncation_direction));
        }
        pairs.push((message.query, message.text));
    }
    let Some((raw_scores, return_text, truncate_, truncation_direction)) = first else {
        return Err(crate::infer::InferError::NoInputs.into());
    };
    let options = RankOptions { raw_scores, return_text, tokens: token_options(truncate_, truncation_direction)? };
    let chars = pairs.iter().map(|(q, t)| q.chars().count() + t.chars().count()).sum();
    let (ranked, done) = rank(infer, call.deadline, pairs, options).await?;
    let answer = pb::RerankResponse { ranks: ranks(ranked), metadata: metadata(chars, &done, started) };
    Ok((answer, Some(done.stats)))
}

async fn tokenize(state: Arc<AppState>, _: Call, r: pb::EncodeRequest) -> Handled<pb::EncodeResponse> {
    let infer = state.infer()?;
    let mut all = tokens(infer, vec![Input::Text(r.inputs)], r.prompt_name.as_deref(), r.add_special_tokens)?;
    let tokens = all
        .remove(0)
        .into_iter()
        .map(|t| pb::SimpleToken {
            id: t.id,
            text: t.text,
            special: t.special,
            start: t.start.map(|o| o as u32),
            stop: t.stop.map(|o| o as u32),
        })
        .collect();
    Ok((pb::EncodeResponse { tokens }, None))
}

async fn decode(state: Arc<AppState>, _: Call, r: pb::DecodeRequest) -> Handled<pb::DecodeResponse> {
    let infer = state.infer()?;
    let mut texts = decode_ids(infer, &[r.ids], r.skip_special_tokens)?;
    Ok((pb::DecodeResponse { text: texts.remove(0) }, None))
}

#[tonic::async_trait]
impl pb::info_server::Info for Tei {
    async fn info(&self, request: Request<pb::InfoRequest>) -> Result<Response<pb::InfoResponse>, Status> {
        self.unary("/tei.v1.Info/Info", Guard::Key, request, |state, _, _| async move {
            let infer = state.infer()?;
            let info = infer.info();
            let model_type = match info.task {
                Task::FeatureExtraction => pb::ModelType::Embedding,
                Task::TextClassification if info.labels.len() == 1 => pb::ModelType::Reranker,
                // TEI knows three kinds; the other heads (fill-mask, token-classification) are
                // classifiers of a kind. GET /info names the task exactly.
                _ => pb::ModelType::Classifier,
            };
            let batching = &state.batching;
            let answer = pb::InfoResponse {
                version: env!("CARGO_PKG_VERSION").into(),
                sha: None,
                docker_label: None,
                model_id: state.model_name.clone(),
                model_sha: None,
                model_dtype: infer.meta().dtype.to_string(),
                model_type: model_type.into(),
                max_concurrent_requests: batching.max_queue as u32,
                max_input_length: infer.tokenizer().max_len() as u32,
                max_batch_tokens: batching.max_batch_tokens as u32,
                max_batch_requests: Some(batching.max_batch_size as u32),
                max_client_batch_size: infer.settings().max_client_batch_size as u32,
                tokenization_workers: 0,
            };
            Ok((answer, None))
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::embed_server::Embed for Tei {
    type EmbedStreamStream = Answers<pb::EmbedResponse>;
    type EmbedSparseStreamStream = Answers<pb::EmbedSparseResponse>;
    type EmbedAllStreamStream = Answers<pb::EmbedAllResponse>;

    async fn embed(&self, request: Request<pb::EmbedRequest>) -> Result<Response<pb::EmbedResponse>, Status> {
        self.unary("/tei.v1.Embed/Embed", Guard::Work, request, embed).await
    }

    async fn embed_stream(&self, request: Request<Streaming<pb::EmbedRequest>>) -> Answered<pb::EmbedResponse> {
        self.stream("/tei.v1.Embed/EmbedStream", Guard::Work, request, embed)
    }

    async fn embed_sparse(
        &self,
        request: Request<pb::EmbedSparseRequest>,
    ) -> Result<Response<pb::EmbedSparseResponse>, Status> {
        self.unary("/tei.v1.Embed/EmbedSparse", Guard::Work, request, embed_sparse).await
    }

    async fn embed_sparse_stream(
        &self,
        request: Request<Streaming<pb::EmbedSparseRequest>>,
    ) -> Answered<pb::EmbedSparseResponse> {
        self.stream("/tei.v1.Embed/EmbedSparseStream", Guard::Work, request, embed_sparse)
    }

    async fn embed_all(&self, request: Request<pb::EmbedAllRequest>) -> Result<Response<pb::EmbedAllResponse>, Status> {
        self.unary("/tei.v1.Embed/EmbedAll", Guard::Work, request, embed_all).await
    }

    async fn embed_all_stream(
        &self,
        request: Request<Streaming<pb::EmbedAllRequest>>,
    ) -> Answered<pb::EmbedAllResponse> {
        self.stream("/tei.v1.Embed/EmbedAllStream", Guard::Work, request, embed_all)
    }
}

#[tonic::async_trait]
impl pb::predict_server::Predict for Tei {
    type PredictStreamStream = Answers<pb::PredictResponse>;
    type PredictPairStreamStream = Answers<pb::PredictResponse>;

    async fn predict(&self, request: Request<pb::PredictRequest>) -> Result<Response<pb::PredictResponse>, Status> {
        self.unary("/tei.v1.Predict/Predict", Guard::Work, request, predict).await
    }

    async fn predict_pair(
        &self,
        request: Request<pb::PredictPairRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        self.unary("/tei.v1.Predict/PredictPair", Guard::Work, request, predict_pair).await
    }

    async fn predict_stream(&self, request: Request<Streaming<pb::PredictRequest>>) -> Answered<pb::PredictResponse> {
        self.stream("/tei.v1.Predict/PredictStream", Guard::Work, request, predict)
    }

    async fn predict_pair_stream(
        &self,
        request: Request<Streaming<pb::PredictPairRequest>>,
    ) -> Answered<pb::PredictResponse> {
        self.stream("/tei.v1.Predict/PredictPairStream", Guard::Work, request, predict_pair)
    }
}

#[tonic::async_trait]
impl pb::rerank_server::Rerank for Tei {
    async fn rerank(&self, request: Request<pb::RerankRequest>) -> Result<Response<pb::RerankResponse>, Status> {
        self.unary("/tei.v1.Rerank/Rerank", Guard::Work, request, rerank).await
    }

    async fn rerank_stream(
        &self,
        request: Request<Streaming<pb::RerankStreamRequest>>,
    ) -> Result<Response<pb::RerankResponse>, Status> {
        self.unary("/tei.v1.Rerank/RerankStream", Guard::Work, request, rerank_stream).await
    }
}

#[tonic::async_trait]
impl pb::tokenize_server::Tokenize for Tei {
    type TokenizeStreamStream = Answers<pb::EncodeResponse>;
    type DecodeStreamStream = Answers<pb::DecodeResponse>;

    async fn tokenize(&self, request: Request<pb::EncodeRequest>) -> Result<Response<pb::EncodeResponse>, Status> {
        self.unary("/tei.v1.Tokenize/Tokenize", Guard::Key, request, tokenize).await
    }

    async fn tokenize_stream(&self, request: Request<Streaming<pb::EncodeRequest>>) -> Answered<pb::EncodeResponse> {
        self.stream("/tei.v1.Tokenize/TokenizeStream", Guard::Key, request, tokenize)
    }

    async fn decode(&self, request: Request<pb::DecodeRequest>) -> Result<Response<pb::DecodeResponse>, Status> {
        self.unary("/tei.v1.Tokenize/Decode", Guard::Key, request, decode).await
    }

    async fn decode_stream(&self, request: Request<Streaming<pb::DecodeRequest>>) -> Answered<pb::DecodeResponse> {
        self.stream("/tei.v1.Tokenize/DecodeStream", Guard::Key, request, decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_fields_read_as_tei_reads_them_and_unknown_directions_are_refused() {
        assert_eq!(truncate(true), Some(true));
        assert_eq!(truncate(false), None, "false is proto3's unset: --auto-truncate decides");
        assert_eq!(direction(0).unwrap(), TruncationDirection::Right);
        assert_eq!(direction(1).unwrap(), TruncationDirection::Left);
        let e = direction(7).unwrap_err();
        assert!(matches!(e, ApiError::Validation(_)) && e.to_string().contains("truncation_direction 7"), "{e}");
    }
}
