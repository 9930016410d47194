//! KServe's Open Inference Protocol (v2) over REST: server and model metadata, health, readiness and
//! `infer`, as a thin adapter over [`crate::infer::Infer`]. The texts arrive as a `BYTES` input
//! tensor (a second one holds the text pairs of a cross-encoder); the pipeline's parameters come in
//! the request's `parameters`. The output is one tensor, `output-0`, shaped as KServe's
//! huggingfaceserver answers the same task (README, "KServe v2"):
//! - feature-extraction: the pooled, normalized sentence embeddings, `FP32 [n, dim]`;
//! - text-classification: the best class id per input, `INT64 [n]`;
//! - fill-mask: the best token of each mask, decoded, per input, `BYTES [n]`;
//! - token-classification: the best label id per token, `INT64 [n, 1, tokens]`, up to the last word
//!   token (`-1` where a token has no label: the leading special token, and the padding of shorter
//!   inputs; the pipeline gives special tokens none).
//!
//! Errors use the protocol's `{"error": "..."}` body; their status is decided by [`ApiError`] as on
//! every other route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AnyOfBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::api::EmbeddingParameters;
use super::error::{ApiError, OwnBody, Rejection};
use super::handlers::{embed_inputs, run, AppResult, EmbedOptions};
use super::layers::timeout::Deadline;
use super::parse::parse_json;
use super::state::AppState;
use crate::infer::{Infer, Input};
use crate::model::Task;
use crate::pipelines::{argmax, Output, Params, TopK};

/// The one version of the served model.
const VERSION: &str = "1";

/// The name of the one output tensor (huggingfaceserver's).
const OUTPUT: &str = "output-0";

/// Request-level parameters of the protocol itself, not of the pipeline: tritonclient asks for
/// binary outputs this way; the answer is JSON either way (its clients read both).
const PROTOCOL_PARAMETERS: [&str; 1] = ["binary_data_output"];

/// The body of an error on a `/v2` route.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct V2ErrorBody {
    pub error: String,
}

/// The protocol's error body for a rejection.
pub fn error_body(rejection: &Rejection) -> V2ErrorBody {
    V2ErrorBody { error: rejection.message.clone() }
}

/// True for the paths of this protocol (their errors leave as [`V2ErrorBody`]).
pub fn is_v2_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// `GET /v2`: the server's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    name: &'static str,
    version: &'static str,
    /// Protocol extensions served: none (no binary tensors, no model repository).
    extensions: Vec<String>,
}

/// A tensor's description in model metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    name: &'static str,
    datatype: &'static str,
    /// `-1`: any size.
    shape: Vec<i64>,
}

/// `GET /v2/models/{name}`: the model's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    name: String,
    versions: Vec<&'static str>,
    platform: &'static str,
    inputs: Vec<TensorMetadata>,
    outputs: Vec<TensorMetadata>,
}

/// `GET /v2/models/{name}/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelReady {
    name: String,
    ready: bool,
}

/// One input tensor of an infer request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    name: String,
    /// Its product is the number of texts.
    shape: Vec<i64>,
    /// `BYTES` (texts) is the only type a text pipeline takes.
    datatype: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
    /// The texts, flat or nested as the shape says (row-major).
    #[schema(value_type = Vec<String>)]
    data: Value,
}

/// An output the client asks for; only `output-0` exists.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestOutput {
    name: String,
    /// `binary_data` (tritonclient): accepted, the answer is JSON.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    parameters: Option<Map<String, Value>>,
}

/// `POST /v2/models/{name}/infer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferRequestBody {
    /// Echoed in the response; the request id when absent.
    #[serde(default)]
    id: Option<String>,
    /// The pipeline's parameters (those of `/predict`; `/embed`'s for feature-extraction).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
    /// One `BYTES` tensor of texts; a second one of text pairs (text-classification).
    inputs: Vec<RequestInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestOutput>>,
}

/// A tensor's data, flat in row-major order.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum TensorData {
    Fp32(Vec<f32>),
    Int64(Vec<i64>),
    Bytes(Vec<String>),
}

/// `anyOf`, not the derive's `oneOf`: an INT64 tensor's integers are numbers too.
impl PartialSchema for TensorData {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .description(Some("flat, row-major: numbers (FP32), integers (INT64) or strings (BYTES)"))
            .item(Vec::<f32>::schema())
            .item(Vec::<i64>::schema())
            .item(Vec::<String>::schema())
            .into()
    }
}

impl ToSchema for TensorData {}

/// One output tensor.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseOutput {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    data: TensorData,
}

/// The answer of an infer request.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponseBody {
    model_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<String>,
    id: String,
    outputs: Vec<ResponseOutput>,
}

/// `GET /v2`: name, version and extensions of the server.
#[utoipa::path(get, path = "/v2", tag = "KServe v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata { name: "pipeserve", version: env!("CARGO_PKG_VERSION"), extensions: Vec::new() })
}

/// `GET /v2/health/live`: as `/health/live`.
#[utoipa::path(get, path = "/v2/health/live", tag = "KServe v2",
    responses((status = 200, description = "`{\"live\": true}`"), (status = 503, description = "the worker stopped")))]
pub async fn server_live(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    probe("live", state.health.is_live())
}

/// `GET /v2/health/ready`: as `/health/ready` (loaded, warmed, worker alive, not draining).
#[utoipa::path(get, path = "/v2/health/ready", tag = "KServe v2",
    responses((status = 200, description = "`{\"ready\": true}`"), (status = 503, description = "loading, draining or not ready")))]
pub async fn server_ready(State(state): State<Arc<AppState>>) -> Response {
    state.health.publish();
    probe("ready", state.health.is_ready())
}

/// A probe's answer: `{key: bool}`, 200 or 503 (the 503 is an answer, not an error).
fn probe(key: &str, ok: bool) -> Response {
    let body = Json(serde_json::json!({ key: ok }));
    if ok {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Extension(OwnBody), body).into_response()
    }
}

/// Fails unless `name` (and `version`, when given) is the served model.
fn check_model(state: &AppState, name: &str, version: Option<&str>) -> AppResult<()> {
    if name != state.served_model_name {
        return Err(ApiError::UnknownModel(name.chars().take(100).collect()));
    }
    match version {
        Some(v) if v != VERSION => {
            Err(ApiError::UnknownModel(format!("{name} version {}", v.chars().take(100).collect::<String>())))
        }
        _ => Ok(()),
    }
}

/// `GET /v2/models/{name}`: the model's tensors.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "KServe v2", params(("name" = String, Path, description = "the served model's name")),
    responses((status = 200, body = ModelMetadata), (status = 404, description = "another name", body = V2ErrorBody)))]
pub async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> AppResult<Json<ModelMetadata>> {
    metadata(&state, &name, None)
}

/// `GET /v2/models/{name}/versions/{version}`: as `/v2/models/{name}`; the one version is `1`.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "KServe v2",
    params(("name" = String, Path, description = "the served model's name"), ("version" = String, Path, description = "`1`")),
    responses((status = 200, body = ModelMetadata), (status = 404, description = "another name or version", body = V2ErrorBody)))]
pub async fn model_version_metadata(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> AppResult<Json<ModelMetadata>> {
    metadata(&state, &name, Some(&version))
}

fn metadata(state: &AppState, name: &str, version: Option<&str>) -> AppResult<Json<ModelMetadata>> {
    check_model(state, name, version)?;
    let infer = state.infer()?;
    let task = infer.info().task;
    let text = |name| TensorMetadata { name, datatype: "BYTES", shape: vec![-1] };
    let mut inputs = vec![text("text")];
    if task == Task::TextClassification {
        inputs.push(text("text_pair"));
    }
    let (datatype, shape) = match task {
        Task::FeatureExtraction => ("FP32", vec![-1, infer.meta().hidden_size as i64]),
        Task::TextClassification => ("INT64", vec![-1]),
        Task::FillMask => ("BYTES", vec![-1]),
        Task::TokenClassification => ("INT64", vec![-1, 1, -1]),
    };
    Ok(Json(ModelMetadata {
        name: state.served_model_name.clone(),
        versions: vec![VERSION],
        platform: "pipeserve",
        inputs,
        outputs: vec![TensorMetadata { name: OUTPUT, datatype, shape }],
    }))
}

/// `GET /v2/models/{name}/ready`: the server is ready (the one model is the server's).
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "KServe v2", params(("name" = String, Path, description = "the served model's name")),
    responses((status = 200, body = ModelReady), (status = 503, description = "loading, draining or not ready", body = ModelReady),
        (status = 404, description = "another name", body = V2ErrorBody)))]
pub async fn model_ready(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> AppResult<Response> {
    readiness(&state, &name, None)
}

/// `GET /v2/models/{name}/versions/{version}/ready`: as `/v2/models/{name}/ready`.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "KServe v2",
    params(("name" = String, Path, description = "the served model's name"), ("version" = String, Path, description = "`1`")),
    responses((status = 200, body = ModelReady), (status = 503, description = "loading, draining or not ready", body = ModelReady),
        (status = 404, description = "another name or version", body = V2ErrorBody)))]
pub async fn model_version_ready(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> AppResult<Response> {
    readiness(&state, &name, Some(&version))
}

fn readiness(state: &AppState, name: &str, version: Option<&str>) -> AppResult<Response> {
    check_model(state, name, version)?;
    state.health.publish();
    let ready = state.health.is_ready();
    let body = Json(ModelReady { name: state.served_model_name.clone(), ready });
    Ok(if ready {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Extension(OwnBody), body).into_response()
    })
}

/// `POST /v2/models/{name}/infer`: the configured pipeline on a `BYTES` tensor of texts.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "KServe v2", params(("name" = String, Path, description = "the served model's name")),
    request_body(content = InferRequestBody, content_type = "application/json"),
    responses((status = 200, description = "`output-0`, shaped per task (README)", body = InferResponseBody),
        (status = 404, description = "another name", body = V2ErrorBody)))]
pub async fn infer(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    call(&state, deadline, &headers, &body, &name, None).await
}

/// `POST /v2/models/{name}/versions/{version}/infer`: as `/v2/models/{name}/infer`.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "KServe v2",
    params(("name" = String, Path, description = "the served model's name"), ("version" = String, Path, description = "`1`")),
    request_body(content = InferRequestBody, content_type = "application/json"),
    responses((status = 200, description = "`output-0`, shaped per task (README)", body = InferResponseBody),
        (status = 404, description = "another name or version", body = V2ErrorBody)))]
pub async fn infer_version(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    call(&state, deadline, &headers, &body, &name, Some(&version)).await
}

async fn call(
    state: &AppState,
    deadline: Deadline,
    headers: &HeaderMap,
    body: &[u8],
    name: &str,
    version: Option<&str>,
) -> AppResult<Response> {
    check_model(state, name, version)?;
    if headers.contains_key("inference-header-content-length") {
        return Err(binary_refused());
    }
    let request: InferRequestBody = parse_json(headers, body)?;
    let infer = state.infer()?;
    let inputs = texts(&request.inputs)?;
    for output in request.outputs.iter().flatten() {
        if output.name != OUTPUT {
            return Err(ApiError::Validation(format!(
                "unknown output {:?}: the one output is {OUTPUT:?}",
                output.name
            )));
        }
    }
    let mut parameters = request.parameters.unwrap_or_default();
    // Triton's request-level `priority` (and ours: a class name), not a pipeline parameter.
    let priority = parameters.remove("priority").map(|p| super::parse::priority(&p)).transpose()?.flatten();
    let deadline = deadline.with_priority(priority);
    for key in PROTOCOL_PARAMETERS {
        parameters.remove(key);
    }
    let id = request
        .id
        .or_else(|| headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_default();
    let (output, stats) = outputs(infer, deadline, inputs, parameters).await?;
    let response = InferResponseBody {
        model_name: state.served_model_name.clone(),
        model_version: version.map(str::to_string),
        id,
        outputs: vec![output],
    };
    Ok((Extension(stats), Json(response)).into_response())
}

fn binary_refused() -> ApiError {
    ApiError::BadRequest("binary tensor data is not supported: send the tensors as JSON".into())
}

/// The texts of the request's input tensors: one `BYTES` tensor, or two (text, text pair) of the
/// same length.
fn texts(tensors: &[RequestInput]) -> AppResult<Vec<Input>> {
    let columns = tensors.iter().enumerate().map(|(i, t)| strings(i, t)).collect::<AppResult<Vec<_>>>()?;
    let mut columns = columns.into_iter();
    match (columns.next(), columns.next(), columns.next()) {
        (Some(texts), None, None) => Ok(texts.into_iter().map(Input::Text).collect()),
        (Some(texts), Some(pairs), None) => {
            if texts.len() != pairs.len() {
                return Err(ApiError::Validation(format!(
                    "inputs[0] has {} texts and inputs[1] {} text pairs: they must match",
                    texts.len(),
                    pairs.len()
                )));
            }
            Ok(texts.into_iter().zip(pairs).map(|(a, b)| Input::Pair(a, b)).collect())
        }
        (None, ..) => Err(ApiError::Validation("inputs is empty: send one BYTES tensor of texts".into())),
        _ => Err(ApiError::Validation("at most two input tensors: the texts and their text pairs".into())),
    }
}

/// One `BYTES` tensor's strings, checked against its shape.
fn strings(index: usize, tensor: &RequestInput) -> AppResult<Vec<String>> {
    let name = &tensor.name;
    if tensor.parameters.as_ref().is_some_and(|p| p.contains_key("binary_data_size")) {
        return Err(binary_refused());
    }
    if tensor.datatype != "BYTES" {
        return Err(ApiError::Validation(format!(
            "inputs[{index}] ({name}): datatype {:?}, a text tensor is BYTES",
            tensor.datatype.chars().take(20).collect::<String>()
        )));
    }
    let mut out = Vec::new();
    flatten(&tensor.data, &mut out, 0).map_err(|e| ApiError::Validation(format!("inputs[{index}] ({name}): {e}")))?;
    let count = tensor.shape.iter().try_fold(1u64, |n, &d| u64::try_from(d).ok().and_then(|d| n.checked_mul(d)));
    if count != Some(out.len() as u64) {
        return Err(ApiError::Validation(format!(
            "inputs[{index}] ({name}): shape {:?} does not hold the {} strings sent",
            tensor.shape,
            out.len()
        )));
    }
    Ok(out)
}

/// Deepest nesting of a tensor's data (a shape has a few dimensions, not hundreds).
const MAX_DEPTH: usize = 8;

fn flatten(value: &Value, out: &mut Vec<String>, depth: usize) -> Result<(), &'static str> {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) if depth < MAX_DEPTH => {
            for item in items {
                flatten(item, out, depth + 1)?;
            }
        }
        Value::Array(_) => return Err("data is nested deeper than a tensor's shape"),
        _ => return Err("data must be strings"),
    }
    Ok(())
}

/// The pipeline's parameters of type `P` from the request's `parameters`.
fn parameters<P: serde::de::DeserializeOwned>(parameters: Map<String, Value>) -> AppResult<P> {
    serde_json::from_value(Value::Object(parameters))
        .map_err(|e| ApiError::Validation(format!("invalid parameters: {e}")))
}

/// Fails when `set`: the v2 output has its one shape (KServe's), which this parameter would change.
fn not_here(set: bool, name: &str) -> AppResult<()> {
    if set {
        return Err(ApiError::Validation(format!(
            "parameter {name} does not apply to the v2 protocol: its output has one shape per task (README)"
        )));
    }
    Ok(())
}

/// Runs the pipeline and shapes its outputs as `output-0`.
async fn outputs(
    infer: &Infer,
    deadline: Deadline,
    inputs: Vec<Input>,
    raw: Map<String, Value>,
) -> AppResult<(ResponseOutput, crate::infer::BatchStats)> {
    let n = inputs.len();
    let task = infer.info().task;
    if task == Task::FeatureExtraction {
        let p: EmbeddingParameters = parameters(raw)?;
        not_here(p.pooling.is_some(), "pooling")?;
        not_here(p.encoding_format.is_some(), "encoding_format")?;
        let options = EmbedOptions {
            normalize: p.normalize.unwrap_or(true),
            truncate: p.truncate,
            truncation_direction: p.truncation_direction.unwrap_or_default(),
            prompt_name: p.prompt_name,
            dimensions: p.dimensions,
        };
        let (vectors, done) = embed_inputs(infer, deadline, inputs, options).await?;
        let dim = vectors.first().map_or(0, Vec::len);
        let data = TensorData::Fp32(vectors.into_iter().flatten().collect());
        return Ok((ResponseOutput { name: OUTPUT, datatype: "FP32", shape: vec![n, dim], data }, done.stats));
    }
    let mut params: Params = parameters(raw)?;
    not_here(params.top_k != TopK::Default, "top_k")?;
    match task {
        Task::TextClassification => params.top_k = TopK::All,
        Task::FillMask => params.top_k = TopK::K(1),
        Task::TokenClassification => {
            not_here(params.aggregation_strategy.is_some(), "aggregation_strategy")?;
            not_here(params.ignore_labels.is_some(), "ignore_labels")?;
            // Every token's label, "O" included.
            params.ignore_labels = Some(Vec::new());
        }
        Task::FeatureExtraction => {}
    }
    let done = run(infer, deadline, inputs, params).await?;
    let labels = &infer.info().labels;
    let label_id = |label: &str| {
        labels
            .iter()
            .position(|l| l == label)
            .map(|i| i as i64)
            .ok_or_else(|| ApiError::Internal(format!("unknown label {label}")))
    };
    let mismatch = || ApiError::Internal(format!("the v2 adapter got an output that does not fit {task}"));
    let output = match task {
        Task::TextClassification => {
            let mut ids = Vec::with_capacity(n);
            for output in &done.outputs {
                let Output::Labels(scores) = output else { return Err(mismatch()) };
                let values: Vec<f32> = scores.iter().map(|s| s.score).collect();
                let best = scores.get(argmax(&values).0).ok_or_else(mismatch)?;
                ids.push(label_id(&best.label)?);
            }
            ResponseOutput { name: OUTPUT, datatype: "INT64", shape: vec![n], data: TensorData::Int64(ids) }
        }
        Task::FillMask => {
            let mut words = Vec::with_capacity(n);
            for output in &done.outputs {
                let best: Vec<u32> = match output {
                    Output::FillMask(candidates) => candidates.first().map(|c| c.token).into_iter().collect(),
                    Output::FillMaskMulti(per_mask) => {
                        per_mask.iter().filter_map(|c| c.first().map(|c| c.token)).collect()
                    }
                    _ => return Err(mismatch()),
                };
                words.push(infer.tokenizer().decode(&best, false));
            }
            ResponseOutput { name: OUTPUT, datatype: "BYTES", shape: vec![n], data: TensorData::Bytes(words) }
        }
        Task::TokenClassification => {
            let mut rows = Vec::with_capacity(n);
            for output in &done.outputs {
                let Output::Entities(entities) = output else { return Err(mismatch()) };
                let len = entities.iter().filter_map(|e| e.index).max().map_or(0, |i| i + 1);
                let mut row = vec![-1i64; len];
                for e in entities {
                    if let (Some(i), Some(label)) = (e.index, &e.entity) {
                        row[i] = label_id(label)?;
                    }
                }
                rows.push(row);
            }
            // Padded to the longest input's tokens (as a padded batch), -1 past each input's end.
            let width = rows.iter().map(Vec::len).max().unwrap_or(0);
            let data = rows.into_iter().flat_map(|mut r| {
                r.resize(width, -1);
                r
            });
            ResponseOutput {
                name: OUTPUT,
                datatype: "INT64",
                shape: vec![n, 1, width],
                data: TensorData::Int64(data.collect()),
            }
        }
        Task::FeatureExtraction => return Err(mismatch()),
    };
    Ok((output, done.stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: Vec<i64>, datatype: &str, data: Value) -> RequestInput {
        RequestInput { name: "text".into(), shape, datatype: datatype.into(), parameters: None, data }
    }

    #[test]
    fn texts_come_from_one_bytes_tensor_or_two_for_pairs() {
        let one = tensor(vec![2], "BYTES", serde_json::json!(["a", "b"]));
        assert_eq!(texts(&[one]).unwrap(), vec![Input::Text("a".into()), Input::Text("b".into())]);
        let nested = tensor(vec![2, 1], "BYTES", serde_json::json!([["a"], ["b"]]));
        let pairs = tensor(vec![2], "BYTES", serde_json::json!(["x", "y"]));
        assert_eq!(
            texts(&[nested, pairs]).unwrap(),
            vec![Input::Pair("a".into(), "x".into()), Input::Pair("b".into(), "y".into())]
        );
    }

    #[test]
    fn a_tensor_that_does_not_hold_texts_is_refused_naming_why() {
        let cases = [
            (tensor(vec![3], "BYTES", serde_json::json!(["a", "b"])), "shape [3]"),
            (tensor(vec![1], "FP32", serde_json::json!([1.0])), "datatype \"FP32\""),
            (tensor(vec![1], "BYTES", serde_json::json!([1])), "must be strings"),
            (tensor(vec![-1], "BYTES", serde_json::json!(["a"])), "shape [-1]"),
        ];
        for (input, needle) in cases {
            let e = texts(&[input]).unwrap_err();
            assert!(matches!(e, ApiError::Validation(_)) && e.to_string().contains(needle), "{e}");
        }
        assert!(texts(&[]).is_err());
        let (a, b) = (
            tensor(vec![1], "BYTES", serde_json::json!(["a"])),
            tensor(vec![2], "BYTES", serde_json::json!(["x", "y"])),
        );
        assert!(texts(&[a, b]).unwrap_err().to_string().contains("must match"));
        let mut binary = tensor(vec![1], "BYTES", serde_json::json!([]));
        binary.parameters = Some(serde_json::from_value(serde_json::json!({"binary_data_size": 9})).unwrap());
        assert!(matches!(texts(&[binary]).unwrap_err(), ApiError::BadRequest(_)));
    }
}
