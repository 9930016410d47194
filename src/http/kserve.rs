//! KServe's Open Inference Protocol (v2) over REST: server and model metadata, health, readiness and
//! `infer`, as a thin adapter over [`crate::infer::Infer`]: the JSON tensors become strings here;
//! what the protocol does with them (and the output per task) is [`super::oip`]'s, shared with gRPC.
//!
//! Triton's binary tensor data extension is served as its clients use it (tritonclient and kserve's
//! `InferenceRESTClient` send tensors this way by default): with an `Inference-Header-Content-Length`
//! header, the body is that many bytes of JSON, then the raw bytes of each input that names its
//! `binary_data_size`, in order; asked for binary outputs (`binary_data_output`, or an output's
//! `binary_data`), the answer is the same layout.
//!
//! Errors use the protocol's `{"error": "..."}` body; their status is decided by [`ApiError`] as on
//! every other route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
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
    /// Protocol extensions served: `binary_tensor_data` (no model repository, no shared memory).
    extensions: Vec<&'static str>,
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
    /// `binary_data_size`: the tensor's bytes follow the JSON (binary tensor data extension).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
    /// The texts, flat or nested as the shape says (row-major); absent for a binary tensor.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    data: Option<Value>,
}

/// An output the client asks for; only `output-0` exists.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestOutput {
    name: String,
    /// `binary_data`: this output's bytes follow the JSON of the answer (overrides the request's
    /// `binary_data_output`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
}

/// `POST /v2/models/{name}/infer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferRequestBody {
    /// Echoed in the response; the request id when absent.
    #[serde(default)]
    id: Option<String>,
    /// kserve's `InferenceRESTClient` names the model in the body too: it must be the path's.
    #[serde(default)]
    model_name: Option<String>,
    /// As `model_name`: the path's version when given.
    #[serde(default)]
    model_version: Option<String>,
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
    outputs: Vec<OutputTensor>,
}

/// An output tensor: its data in the JSON, or its size with its bytes after the JSON.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OutputTensor {
    Data(ResponseOutput),
    Binary(BinaryOutput),
}

/// An output whose bytes follow the JSON (binary tensor data extension).
#[derive(Debug, Serialize, ToSchema)]
pub struct BinaryOutput {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    parameters: BinarySize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BinarySize {
    binary_data_size: usize,
}

/// The header of the binary tensor data extension: the length of the body's JSON part.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// `GET /v2`: name, version and extensions of the server.
#[utoipa::path(get, path = "/v2", tag = "KServe v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "pipeserve",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data"],
    })
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
    request_body(content = InferRequestBody, content_type = "application/json",
        description = "JSON; or, with `Inference-Header-Content-Length`, that much JSON then the binary tensors (README)"),
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
    request_body(content = InferRequestBody, content_type = "application/json",
        description = "JSON; or, with `Inference-Header-Content-Length`, that much JSON then the binary tensors (README)"),
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
    let (json, binary) = split_body(headers, body)?;
    // With binary tensors the body is `application/octet-stream`; its first part is JSON regardless.
    let request: InferRequestBody =
        if binary.is_some() { parse_json(&HeaderMap::new(), json)? } else { parse_json(headers, json)? };
    if let Some(body_name) = &request.model_name {
        oip::check_model(name, body_name, request.model_version.as_deref().or(version))?;
    }
    let infer = state.infer()?;
    let inputs = texts(&request.inputs, binary)?;
    oip::check_outputs(request.outputs.iter().flatten().map(|o| o.name.as_str()))?;
    let parameters = request.parameters.unwrap_or_default();
    let binary_output = binary_output(&parameters, request.outputs.as_deref().unwrap_or_default())?;
    let id = request
        .id
        .or_else(|| headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_default();
    let (output, stats) = oip::infer(infer, deadline, inputs, parameters).await?;
    let mut response = InferResponseBody {
        model_name: state.served_model_name.clone(),
        model_version: version.map(str::to_string),
        id,
        outputs: Vec::with_capacity(1),
    };
    if !binary_output {
        response.outputs.push(OutputTensor::Data(output));
        return Ok((Extension(stats), Json(response)).into_response());
    }
    let ResponseOutput { name: tensor, datatype, shape, data } = output;
    let raw = data.into_raw();
    let parameters = BinarySize { binary_data_size: raw.len() };
    response.outputs.push(OutputTensor::Binary(BinaryOutput { name: tensor, datatype, shape, parameters }));
    let mut bytes = serde_json::to_vec(&response).map_err(|e| ApiError::Internal(e.to_string()))?;
    let json_length = bytes.len().to_string();
    bytes.extend_from_slice(&raw);
    let headers = [(header::CONTENT_TYPE.as_str(), "application/octet-stream"), (HEADER_LENGTH, json_length.as_str())];
    Ok((Extension(stats), headers, bytes).into_response())
}

/// The body's JSON part and, with the binary tensor data extension's header, the bytes after it.
fn split_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> AppResult<(&'a [u8], Option<&'a [u8]>)> {
    let Some(value) = headers.get(HEADER_LENGTH) else { return Ok((body, None)) };
    let length = value.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()).ok_or_else(|| {
        ApiError::BadRequest("Inference-Header-Content-Length must be the JSON part's length in bytes".into())
    })?;
    if length > body.len() {
        return Err(ApiError::BadRequest(format!(
            "Inference-Header-Content-Length {length} is past the body's {} bytes",
            body.len()
        )));
    }
    let (json, binary) = body.split_at(length);
    Ok((json, Some(binary)))
}

/// A boolean flag of a `parameters` object, if set.
fn flag(parameters: &Map<String, Value>, key: &str, owner: &str) -> AppResult<Option<bool>> {
    match parameters.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::Validation(format!("{owner} parameter {key} must be true or false"))),
    }
}

/// Whether the one output goes as binary: its own `binary_data`, else the request's
/// `binary_data_output`, else JSON.
fn binary_output(parameters: &Map<String, Value>, outputs: &[RequestOutput]) -> AppResult<bool> {
    let mut own = None;
    for output in outputs {
        if let Some(p) = &output.parameters {
            own = own.or(flag(p, "binary_data", "output")?);
        }
    }
    Ok(own.or(flag(parameters, "binary_data_output", "request")?).unwrap_or(false))
}

/// The texts of the request's input tensors: one `BYTES` tensor, or two (text, text pair) of the
/// same length. `binary` is the body after its JSON, which the binary inputs share in order.
fn texts(tensors: &[RequestInput], mut binary: Option<&[u8]>) -> AppResult<Vec<Input>> {
    let columns = tensors.iter().enumerate().map(|(i, t)| strings(i, t, &mut binary)).collect::<AppResult<Vec<_>>>()?;
    if let Some(rest) = binary.filter(|rest| !rest.is_empty()) {
        return Err(ApiError::BadRequest(format!(
            "{} bytes of binary data past the inputs' binary_data_size",
            rest.len()
        )));
    }
    oip::inputs(columns)
}

/// One `BYTES` tensor's strings, from its JSON `data` or its share of `binary`, checked against its
/// shape.
fn strings(index: usize, tensor: &RequestInput, binary: &mut Option<&[u8]>) -> AppResult<Vec<String>> {
    let name = &tensor.name;
    oip::check_datatype(index, name, &tensor.datatype)?;
    let invalid = |e: &str| ApiError::Validation(format!("inputs[{index}] ({name}): {e}"));
    let size = tensor.parameters.as_ref().and_then(|p| p.get("binary_data_size"));
    let out = match (size, &tensor.data) {
        (Some(_), Some(_)) => return Err(invalid("both data and binary_data_size: send one")),
        (None, None) => return Err(invalid("no data: send data, or binary_data_size and the bytes")),
        (None, Some(data)) => {
            let mut out = Vec::new();
            flatten(data, &mut out, 0).map_err(invalid)?;
            out
        }
        (Some(size), None) => {
            let size = size.as_u64().ok_or_else(|| invalid("binary_data_size must be a byte count"))?;
            let rest = binary
                .as_mut()
                .ok_or_else(|| invalid("binary_data_size without the Inference-Header-Content-Length header"))?;
            let size = usize::try_from(size).ok().filter(|&n| n <= rest.len()).ok_or_else(|| {
                invalid(&format!("binary_data_size {size} is past the {} bytes after the JSON", rest.len()))
            })?;
            let (own, after) = rest.split_at(size);
            *rest = after;
            oip::raw_strings(own).map_err(invalid)?
        }
    };
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
        RequestInput { name: "text".into(), shape, datatype: datatype.into(), parameters: None, data: Some(data) }
    }

    fn binary(shape: Vec<i64>, size: usize) -> RequestInput {
        let parameters = serde_json::from_value(serde_json::json!({"binary_data_size": size})).unwrap();
        RequestInput { name: "text".into(), shape, datatype: "BYTES".into(), parameters: Some(parameters), data: None }
    }

    fn texts(tensors: &[RequestInput]) -> AppResult<Vec<Input>> {
        super::texts(tensors, None)
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
        let e = texts(&[binary(vec![1], 9)]).unwrap_err();
        assert!(e.to_string().contains("without the Inference-Header-Content-Length"), "{e}");
    }

    #[test]
    fn binary_tensors_take_their_share_of_the_bytes_after_the_json_in_order() {
        let raw = |s: &[&str]| oip::TensorData::Bytes(s.iter().map(|s| s.to_string()).collect()).into_raw();
        let (a, b) = (raw(&["a", "héllo"]), raw(&["x", ""]));
        let body = [a.clone(), b.clone()].concat();
        let pairs = [binary(vec![2], a.len()), binary(vec![2, 1], b.len())];
        assert_eq!(
            super::texts(&pairs, Some(&body)).unwrap(),
            vec![Input::Pair("a".into(), "x".into()), Input::Pair("héllo".into(), String::new())]
        );
        // A JSON tensor beside a binary one.
        let mixed = [tensor(vec![2], "BYTES", serde_json::json!(["p", "q"])), binary(vec![2], b.len())];
        assert_eq!(super::texts(&mixed, Some(&b)).unwrap()[0], Input::Pair("p".into(), "x".into()));
        let cases: [(&[RequestInput], &[u8], &str); 4] = [
            (&pairs[..1], &body, "bytes of binary data past"),
            (&[binary(vec![2], a.len() + 1)], &a, "past the"),
            (&[binary(vec![1], 3)], &[5, 0, 0], "inside a length prefix"),
            (&[binary(vec![1], 6)], &[2, 0, 0, 0, 0xff, 0xfe], "not UTF-8"),
        ];
        for (tensors, bytes, needle) in cases {
            let e = super::texts(tensors, Some(bytes)).unwrap_err();
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
        let mut both = binary(vec![1], 5);
        both.data = Some(serde_json::json!(["a"]));
        assert!(super::texts(&[both], Some(&raw(&["a"]))).unwrap_err().to_string().contains("both data"));
    }

    #[test]
    fn the_header_splits_the_body_and_outputs_go_binary_when_asked() {
        let mut headers = HeaderMap::new();
        assert_eq!(split_body(&headers, b"{}xyz").unwrap(), (&b"{}xyz"[..], None));
        headers.insert(HEADER_LENGTH, "2".parse().unwrap());
        assert_eq!(split_body(&headers, b"{}xyz").unwrap(), (&b"{}"[..], Some(&b"xyz"[..])));
        headers.insert(HEADER_LENGTH, "9".parse().unwrap());
        assert!(matches!(split_body(&headers, b"{}").unwrap_err(), ApiError::BadRequest(_)));
        headers.insert(HEADER_LENGTH, "-1".parse().unwrap());
        assert!(matches!(split_body(&headers, b"{}").unwrap_err(), ApiError::BadRequest(_)));

        let map = |v: Value| serde_json::from_value::<Map<String, Value>>(v).unwrap();
        let output = |binary: Option<bool>| RequestOutput {
            name: oip::OUTPUT.into(),
            parameters: binary.map(|b| map(serde_json::json!({"binary_data": b}))),
        };
        let on = map(serde_json::json!({"binary_data_output": true}));
        assert!(!binary_output(&Map::new(), &[]).unwrap());
        assert!(binary_output(&on, &[]).unwrap());
        assert!(binary_output(&on, &[output(None)]).unwrap());
        assert!(!binary_output(&on, &[output(Some(false))]).unwrap());
        assert!(binary_output(&Map::new(), &[output(Some(true))]).unwrap());
        let e = binary_output(&map(serde_json::json!({"binary_data_output": "yes"})), &[]).unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
    }
}
