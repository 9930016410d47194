//! The Hugging Face Inference API call, `{"inputs", "parameters", "options"}`, at `POST /` (with a
//! JSON content type) and `POST /predict`, with outputs in the shapes `huggingface_hub`'s
//! `InferenceClient` task methods parse. Where they differ from the `transformers` pipeline
//! (README, "Clients"): one text to text-classification gives `[[{label, score}, ...]]`, and
//! feature-extraction at `/` on a sentence-transformers model gives the pooled sentence vector
//! `[[f32]]` (TEI's and the Inference API's answer) unless `pooling` asks otherwise.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::api::{EmbeddingParameters, EncodingFormat, Inputs, PipelineOutput};
use super::error::ApiError;
use super::handlers::{embed_inputs, raw_text, run, AppResult, EmbedOptions};
use super::layers::timeout::Deadline;
use super::parse::parse_json;
use super::state::AppState;
use crate::infer::{Infer, Inferred, Input};
use crate::model::Task;
use crate::pipelines::{zero_shot, ClassificationFn, Output, Params, Pooling, TopK};
use crate::tokenize::TruncationDirection;
use utoipa::openapi::schema::{AnyOfBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// An Inference API body with the task's parameters `P` (parsed from the body itself, so a
/// duplicate or mistyped parameter is a 422 naming it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound = "P: Deserialize<'de>")]
struct ApiRequest<P> {
    inputs: Inputs,
    #[serde(default = "Option::default")]
    parameters: Option<P>,
    /// `wait_for_model`, `use_cache`: accepted, nothing to do (the model is loaded, nothing is
    /// cached); `priority`: the request's class (read from the body before this type).
    #[serde(default)]
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    options: Option<serde_json::Value>,
    /// TEI's `/predict` fields, at the top level: `truncate` and `truncation_direction` as in
    /// `parameters`, `raw_scores` as `function_to_apply: "none"` (classification). `parameters` wins.
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<TruncationDirection>,
    #[serde(default)]
    raw_scores: Option<bool>,
}

impl ApiRequest<Params> {
    /// The parameters for `task`, with TEI's top-level fields where `parameters` leaves them unset.
    fn params(&mut self, task: Task) -> AppResult<Params> {
        let mut p = self.parameters.take().unwrap_or_default();
        p.truncate = p.truncate.or(self.truncate);
        p.truncation_direction = p.truncation_direction.or(self.truncation_direction);
        if self.raw_scores == Some(true) {
            if task != Task::TextClassification {
                return Err(ApiError::Validation(format!("raw_scores does not apply to {task}")));
            }
            p.function_to_apply = p.function_to_apply.or(Some(ClassificationFn::None));
        }
        Ok(p)
    }
}

/// The body of `/predict` (and of `/` with a JSON content type): which shape applies depends on
/// the served task (`GET /info`), so the schema lists the three (`anyOf`: a body may fit several).
pub struct InferenceApiRequest;

impl PartialSchema for InferenceApiRequest {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .description(Some(
                "fill-mask, text-classification, token-classification: {inputs, parameters}; \
                 feature-extraction: its settings at the top level or in parameters; \
                 zero-shot-classification (an NLI model): parameters.candidate_labels",
            ))
            .item(<ApiRequest<Params> as PartialSchema>::schema())
            .item(FeatureRequest::schema())
            .item(<ApiRequest<ZeroShotParameters> as PartialSchema>::schema())
            .into()
    }
}

impl ToSchema for InferenceApiRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ApiRequest<Params> as ToSchema>::schemas(schemas);
        FeatureRequest::schemas(schemas);
        <ApiRequest<ZeroShotParameters> as ToSchema>::schemas(schemas);
        // The generic requests refer to their parameters' schemas by name.
        schemas.push((Params::name().into_owned(), Params::schema()));
        Params::schemas(schemas);
        schemas.push((ZeroShotParameters::name().into_owned(), ZeroShotParameters::schema()));
        ZeroShotParameters::schemas(schemas);
    }
}

/// feature-extraction's body: `InferenceClient.feature_extraction` sends its settings at the top
/// level (the Inference API's feature-extraction spec), others send them in `parameters`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FeatureRequest {
    inputs: Inputs,
    #[serde(default)]
    parameters: Option<EmbeddingParameters>,
    #[serde(default)]
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    options: Option<serde_json::Value>,
    #[serde(default)]
    normalize: Option<bool>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<TruncationDirection>,
    #[serde(default)]
    prompt_name: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    encoding_format: Option<EncodingFormat>,
}

impl FeatureRequest {
    /// The settings, from `parameters` or the top level.
    fn settings(&mut self) -> EmbeddingParameters {
        let p = self.parameters.take().unwrap_or_default();
        EmbeddingParameters {
            normalize: p.normalize.or(self.normalize),
            truncate: p.truncate.or(self.truncate),
            truncation_direction: p.truncation_direction.or(self.truncation_direction),
            prompt_name: p.prompt_name.or(self.prompt_name.take()),
            dimensions: p.dimensions.or(self.dimensions),
            encoding_format: p.encoding_format.or(self.encoding_format),
            pooling: p.pooling,
        }
    }
}

/// True when the request says its body is JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let essence = v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    })
}

/// `POST /`: the Inference API call with a JSON content type, the raw-text contract otherwise
/// (`curl -d "test [MASK]"` sends a form content type and keeps getting the fill-mask list).
#[utoipa::path(post, path = "/", tag = "Inference API",
    request_body(description = "JSON: the Inference API call for the served task (as at /predict); any other content type: \
the raw UTF-8 body is one input (the seed's contract)", content(
        (InferenceApiRequest = "application/json"),
        (String = "text/plain"))),
    responses((status = 200, description = "the task's output, in the shapes `huggingface_hub`'s task methods parse (README)", body = PipelineOutput)))]
pub async fn root(
    state: State<Arc<AppState>>,
    deadline: Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    if !is_json(&headers) {
        return raw_text(state, deadline, body).await.map(IntoResponse::into_response);
    }
    let (State(state), Extension(deadline)) = (state, deadline);
    call(&state, deadline, &headers, &body, true).await
}

/// `POST /predict`: the Inference API call; feature-extraction answers per-token states unless
/// `pooling` asks for a sentence vector (the `transformers` pipeline's default).
#[utoipa::path(post, path = "/predict", tag = "Inference API", request_body(content = InferenceApiRequest, content_type = "application/json"),
    responses((status = 200, description = "the task's output (README: shapes per task)", body = PipelineOutput)))]
pub async fn predict(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    call(&state, deadline, &headers, &body, false).await
}

/// One Inference API call; `pooled_default`: a sentence-transformers model's feature-extraction
/// answers the pooled sentence vector when `pooling` is not given.
async fn call(
    state: &AppState,
    deadline: Deadline,
    headers: &HeaderMap,
    body: &[u8],
    pooled_default: bool,
) -> AppResult<Response> {
    let infer = state.infer()?;
    let deadline = deadline.with_priority(options_priority(body)?);
    match infer.info().task {
        Task::FeatureExtraction => {
            let mut request: FeatureRequest = parse_json(headers, body)?;
            let p = request.settings();
            features(infer, deadline, request.inputs, p, pooled_default).await
        }
        Task::TextClassification if asks_zero_shot(body) => {
            let request: ApiRequest<ZeroShotParameters> = parse_json(headers, body)?;
            if request.raw_scores.is_some() || request.truncation_direction.is_some() {
                let message = "raw_scores and truncation_direction do not apply to zero-shot-classification";
                return Err(ApiError::Validation(message.into()));
            }
            let mut p = request.parameters.ok_or_else(|| ApiError::Validation("candidate_labels is missing".into()))?;
            p.truncate = p.truncate.or(request.truncate);
            zero_shot(infer, deadline, request.inputs.is_one(), request.inputs.into_vec(), p).await
        }
        _ => {
            let mut request: ApiRequest<Params> = parse_json(headers, body)?;
            let one = request.inputs.is_one();
            let params = request.params(infer.info().task)?;
            let done = run(infer, deadline, request.inputs.into_vec(), params).await?;
            Ok(respond(infer, one, done))
        }
    }
}

/// The body's `options.priority`, if any (an invalid one is a 422; an invalid body is left to the
/// request's own parser to report).
fn options_priority(body: &[u8]) -> AppResult<Option<crate::batching::Priority>> {
    // Most bodies name no priority: they are not parsed twice.
    if !body.windows(8).any(|w| w == b"priority") {
        return Ok(None);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Ok(None) };
    value.get("options").and_then(|o| o.get("priority")).map_or(Ok(None), super::parse::priority)
}

/// True when the body's `parameters` name `candidate_labels` (zero-shot on an NLI model). A body
/// that is not JSON is not; its real parse reports why.
fn asks_zero_shot(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("parameters").and_then(|p| p.get("candidate_labels")).is_some())
}

/// feature-extraction: the pooled sentence vector (`[[f32]]`) or the pipeline's per-token states.
async fn features(
    infer: &Infer,
    deadline: Deadline,
    inputs: Inputs,
    p: EmbeddingParameters,
    pooled_default: bool,
) -> AppResult<Response> {
    if p.encoding_format.is_some_and(|f| f != EncodingFormat::Float) {
        return Err(ApiError::Validation("encoding_format: only \"float\" is served here".into()));
    }
    // A SPLADE model answers its sparse embeddings unless another pooling is asked (and refused).
    let splade = infer.info().pooling.pooling == Pooling::Splade;
    let pooled = match p.pooling {
        None => !splade && pooled_default && infer.info().sentence_transformers,
        Some(_) => false,
    };
    if pooled {
        let options = EmbedOptions {
            // TEI's default, as the Inference API serves sentence-transformers models.
            normalize: p.normalize.unwrap_or(true),
            truncate: p.truncate,
            truncation_direction: p.truncation_direction.unwrap_or_default(),
            prompt_name: p.prompt_name,
            dimensions: p.dimensions,
        };
        let (vectors, done) = embed_inputs(infer, deadline, inputs.into_vec(), options).await?;
        return Ok((Extension(done.stats), Json(vectors)).into_response());
    }
    if p.prompt_name.is_some() || p.dimensions.is_some() {
        return Err(ApiError::Validation("prompt_name and dimensions apply to pooled sentence embeddings only".into()));
    }
    let params = Params {
        pooling: Some(p.pooling.unwrap_or(if splade { Pooling::Splade } else { Pooling::None })),
        normalize: p.normalize,
        truncate: p.truncate,
        truncation_direction: p.truncation_direction,
        ..Params::default()
    };
    let one = inputs.is_one();
    let done = run(infer, deadline, inputs.into_vec(), params).await?;
    Ok(respond(infer, one, done))
}

/// `candidate_labels`: a list, or one string of comma-separated labels (as the pipeline takes it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
enum CandidateLabels {
    List(Vec<String>),
    Joined(String),
}

/// zero-shot-classification parameters, as the `transformers` pipeline and
/// `InferenceClient.zero_shot_classification` name them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ZeroShotParameters {
    candidate_labels: CandidateLabels,
    #[serde(default)]
    hypothesis_template: Option<String>,
    #[serde(default)]
    multi_label: bool,
    #[serde(default)]
    truncate: Option<bool>,
}

/// zero-shot-classification on an NLI model: one (text, hypothesis) pair per candidate label,
/// all through one service call; the answer per text is `[{label, score}]`, best first (the
/// pipeline's `{sequence, labels, scores}` as `InferenceClient` reads it).
async fn zero_shot(
    infer: &Infer,
    deadline: Deadline,
    one: bool,
    inputs: Vec<Input>,
    p: ZeroShotParameters,
) -> AppResult<Response> {
    let bad = |e: zero_shot::ZeroShotError| ApiError::Validation(e.to_string());
    let classes = zero_shot::NliClasses::from_labels(&infer.info().labels).map_err(bad)?;
    let labels: Vec<String> = match p.candidate_labels {
        CandidateLabels::List(l) => l,
        CandidateLabels::Joined(s) => s.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
    };
    if labels.is_empty() {
        return Err(bad(zero_shot::ZeroShotError::NoLabels));
    }
    let template = p.hypothesis_template.as_deref().unwrap_or(zero_shot::DEFAULT_TEMPLATE);
    let hypotheses =
        labels.iter().map(|l| zero_shot::hypothesis(template, l)).collect::<Result<Vec<_>, _>>().map_err(bad)?;
    let mut texts = Vec::with_capacity(inputs.len());
    for input in inputs {
        let Input::Text(text) = input else {
            return Err(ApiError::Validation("zero-shot classification takes texts, not text pairs".into()));
        };
        texts.push(text);
    }
    let pairs = texts.iter().flat_map(|t| hypotheses.iter().map(|h| Input::Pair(t.clone(), h.clone()))).collect();
    let params = Params {
        function_to_apply: Some(ClassificationFn::None),
        top_k: TopK::All,
        truncate: p.truncate,
        ..Params::default()
    };
    let done = run(infer, deadline, pairs, params).await?;
    let names = &infer.info().labels;
    let logits = done
        .outputs
        .iter()
        .map(|output| match output {
            Output::Labels(scores) => {
                let mut row = vec![0f32; names.len()];
                for s in scores {
                    let i = names
                        .iter()
                        .position(|n| *n == s.label)
                        .ok_or_else(|| ApiError::Internal("unknown label".into()))?;
                    row[i] = s.score;
                }
                Ok(row)
            }
            _ => Err(ApiError::Internal("zero-shot got no logits".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut answers: Vec<Vec<zero_shot::LabelScore>> =
        logits.chunks(labels.len()).map(|rows| zero_shot::scores(&labels, rows, classes, p.multi_label)).collect();
    let stats = Extension(done.stats);
    Ok(if one { (stats, Json(answers.remove(0))).into_response() } else { (stats, Json(answers)).into_response() })
}

/// The response of an Inference API call: one output for one input (text-classification's
/// wrapped in a list, as the API answers and `InferenceClient.text_classification` reads it),
/// a list for a list.
pub fn respond(infer: &Infer, one: bool, mut done: Inferred) -> Response {
    let stats = Extension(done.stats);
    if !one {
        return (stats, Json(done.outputs)).into_response();
    }
    let output = done.outputs.remove(0);
    if infer.info().task == Task::TextClassification {
        (stats, Json(vec![output])).into_response()
    } else {
        (stats, Json(output)).into_response()
    }
}
