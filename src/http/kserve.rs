//! KServe's Open Inference Protocol (v2) over REST: server and model metadata, health, readiness and
//! `infer`, as a thin adapter over [`crate::infer::Infer`]: the JSON tensors become strings here;
//! what the protocol does with them (and the output per task) is [`super::oip`]'s, shared with gRPC.
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
use utoipa::ToSchema;

use super::error::{ApiError, OwnBody, Rejection};
use super::handlers::AppResult;
use super::layers::timeout::Deadline;
use super::oip::{self, ResponseOutput, TensorMetadata, VERSION};
use super::parse::parse_json;
use super::state::AppState;
use crate::infer::Input;

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
    oip::check_model(&state.served_model_name, name, version)?;
    let (inputs, outputs) = oip::model_tensors(state.infer()?);
    Ok(Json(ModelMetadata {
        name: state.served_model_name.clone(),
        versions: vec![VERSION],
        platform: "pipeserve",
        inputs,
        outputs,
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
    oip::check_model(&state.served_model_name, name, version)?;
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
    oip::check_model(&state.served_model_name, name, version)?;
    if headers.contains_key("inference-header-content-length") {
        return Err(binary_refused());
    }
    let request: InferRequestBody = parse_json(headers, body)?;
    let infer = state.infer()?;
    let inputs = texts(&request.inputs)?;
    oip::check_outputs(request.outputs.iter().flatten().map(|o| o.name.as_str()))?;
    let parameters = request.parameters.unwrap_or_default();
    let id = request
        .id
        .or_else(|| headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_default();
    let (output, stats) = oip::infer(infer, deadline, inputs, parameters).await?;
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
    oip::inputs(tensors.iter().enumerate().map(|(i, t)| strings(i, t)).collect::<AppResult<Vec<_>>>()?)
}

/// One `BYTES` tensor's strings, checked against its shape.
fn strings(index: usize, tensor: &RequestInput) -> AppResult<Vec<String>> {
    let name = &tensor.name;
    if tensor.parameters.as_ref().is_some_and(|p| p.contains_key("binary_data_size")) {
        return Err(binary_refused());
    }
    oip::check_datatype(index, name, &tensor.datatype)?;
    let mut out = Vec::new();
    flatten(&tensor.data, &mut out, 0).map_err(|e| ApiError::Validation(format!("inputs[{index}] ({name}): {e}")))?;
    oip::check_shape(index, name, &tensor.shape, out.len())?;
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
