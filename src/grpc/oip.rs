//! KServe's Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`): a thin
//! adapter that decodes the request's tensors into strings and hands them to the protocol's shared
//! core, [`crate::http::oip`] (the REST adapter's too), so both answer the same per task.
//!
//! A `BYTES` tensor arrives either in `contents.bytes_contents` or, as Triton's clients send it, in
//! `raw_input_contents` (one entry per input tensor, each element a 4-byte little-endian length then
//! its bytes). The answer comes the same way Triton answers: in `raw_output_contents` (little-endian
//! values; `BYTES` length-prefixed) when the request used raw inputs — tritonclient's `as_numpy`
//! reads only those — else in the typed `contents`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

use super::call::{Edge, Guard};
use super::pb::inference as pb;
use super::pb::inference::grpc_inference_service_server::GrpcInferenceService;
use crate::http::error::ApiError;
use crate::http::oip::{self, ResponseOutput, TensorData, TensorMetadata};

type AppResult<T> = Result<T, ApiError>;

pub struct Oip {
    edge: Arc<Edge>,
}

impl Oip {
    pub fn new(edge: Arc<Edge>) -> Self {
        Self { edge }
    }
}

/// The protocol's "no version given".
fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl GrpcInferenceService for Oip {
    async fn server_live(
        &self,
        request: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        let health = &self.edge.state.health;
        self.edge
            .unary("/inference.GRPCInferenceService/ServerLive", Guard::Open, request, |_, _| async move {
                health.publish();
                Ok((pb::ServerLiveResponse { live: health.is_live() }, None))
            })
            .await
    }

    async fn server_ready(
        &self,
        request: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        let health = &self.edge.state.health;
        self.edge
            .unary("/inference.GRPCInferenceService/ServerReady", Guard::Open, request, |_, _| async move {
                health.publish();
                Ok((pb::ServerReadyResponse { ready: health.is_ready() }, None))
            })
            .await
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let state = &self.edge.state;
        self.edge
            .unary("/inference.GRPCInferenceService/ModelReady", Guard::Key, request, |_, r| async move {
                oip::check_model(&state.served_model_name, &r.name, version(&r.version))?;
                state.health.publish();
                Ok((pb::ModelReadyResponse { ready: state.health.is_ready() }, None))
            })
            .await
    }

    async fn server_metadata(
        &self,
        request: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        self.edge
            .unary("/inference.GRPCInferenceService/ServerMetadata", Guard::Open, request, |_, _| async move {
                let answer = pb::ServerMetadataResponse {
                    name: "pipeserve".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    extensions: Vec::new(),
                };
                Ok((answer, None))
            })
            .await
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let state = &self.edge.state;
        self.edge
            .unary("/inference.GRPCInferenceService/ModelMetadata", Guard::Key, request, |_, r| async move {
                oip::check_model(&state.served_model_name, &r.name, version(&r.version))?;
                let (inputs, outputs) = oip::model_tensors(state.infer()?);
                let tensors = |ts: Vec<TensorMetadata>| {
                    ts.into_iter()
                        .map(|t| pb::model_metadata_response::TensorMetadata {
                            name: t.name.into(),
                            datatype: t.datatype.into(),
                            shape: t.shape,
                        })
                        .collect()
                };
                let answer = pb::ModelMetadataResponse {
                    name: state.served_model_name.clone(),
                    versions: vec![oip::VERSION.into()],
                    platform: "pipeserve".into(),
                    inputs: tensors(inputs),
                    outputs: tensors(outputs),
                };
                Ok((answer, None))
            })
            .await
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let state = &self.edge.state;
        self.edge
            .unary("/inference.GRPCInferenceService/ModelInfer", Guard::Work, request, |call, r| async move {
                oip::check_model(&state.served_model_name, &r.model_name, version(&r.model_version))?;
                let infer = state.infer()?;
                let raw = !r.raw_input_contents.is_empty();
                let inputs = oip::inputs(texts(&r)?)?;
                oip::check_outputs(r.outputs.iter().map(|o| o.name.as_str()))?;
                let (output, stats) = oip::infer(infer, call.deadline, inputs, parameters(&r.parameters)?).await?;
                let id = if r.id.is_empty() { call.request_id } else { r.id };
                let (output, raw_output) = encode(output, raw);
                let answer = pb::ModelInferResponse {
                    model_name: state.served_model_name.clone(),
                    model_version: r.model_version,
                    id,
                    parameters: HashMap::new(),
                    outputs: vec![output],
                    raw_output_contents: raw_output.into_iter().collect(),
                };
                Ok((answer, Some(stats)))
            })
            .await
    }
}

/// The strings of each input tensor, checked against its datatype and shape.
fn texts(request: &pb::ModelInferRequest) -> AppResult<Vec<Vec<String>>> {
    let raw = &request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ApiError::Validation(format!(
            "raw_input_contents has {} entries for {} input tensors: send one per input",
            raw.len(),
            request.inputs.len()
        )));
    }
    let mut columns = Vec::with_capacity(request.inputs.len());
    for (index, tensor) in request.inputs.iter().enumerate() {
        let name = &tensor.name;
        oip::check_datatype(index, name, &tensor.datatype)?;
        if tensor.parameters.keys().any(|k| k.starts_with("shared_memory")) {
            return Err(ApiError::Validation(format!(
                "inputs[{index}] ({name}): shared-memory tensors are not supported: send the contents"
            )));
        }
        let typed = tensor.contents.as_ref().map(|c| c.bytes_contents.as_slice()).unwrap_or_default();
        let invalid = |e: &str| ApiError::Validation(format!("inputs[{index}] ({name}): {e}"));
        let strings = match raw.get(index) {
            Some(_) if !typed.is_empty() => return Err(invalid("both contents and raw_input_contents: send one")),
            Some(bytes) => oip::raw_strings(bytes).map_err(invalid)?,
            None => typed
                .iter()
                .map(|e| String::from_utf8(e.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| invalid("an element is not UTF-8"))?,
        };
        oip::check_shape(index, name, &tensor.shape, strings.len())?;
        columns.push(strings);
    }
    Ok(columns)
}

/// The request's `parameters` as the pipeline's JSON parameters.
fn parameters(given: &HashMap<String, pb::InferParameter>) -> AppResult<Map<String, Value>> {
    use pb::infer_parameter::ParameterChoice;
    given
        .iter()
        .map(|(key, p)| {
            let value = match &p.parameter_choice {
                Some(ParameterChoice::BoolParam(b)) => Value::Bool(*b),
                Some(ParameterChoice::Int64Param(i)) => Value::from(*i),
                Some(ParameterChoice::StringParam(s)) => Value::String(s.clone()),
                None => return Err(ApiError::Validation(format!("parameter {key:?} has no value"))),
            };
            Ok((key.clone(), value))
        })
        .collect()
}

/// The output tensor, its data typed in `contents` or (when `raw`) as one `raw_output_contents`
/// entry.
fn encode(output: ResponseOutput, raw: bool) -> (pb::model_infer_response::InferOutputTensor, Option<Vec<u8>>) {
    let ResponseOutput { name, datatype, shape, data } = output;
    let mut contents = pb::InferTensorContents::default();
    let mut bytes = Vec::new();
    match data {
        data if raw => bytes = data.into_raw(),
        TensorData::Fp32(v) => contents.fp32_contents = v,
        TensorData::Int64(v) => contents.int64_contents = v,
        TensorData::Bytes(v) => contents.bytes_contents = v.into_iter().map(String::into_bytes).collect(),
    }
    let tensor = pb::model_infer_response::InferOutputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.into_iter().map(|d| d as i64).collect(),
        parameters: HashMap::new(),
        contents: (!raw).then_some(contents),
    };
    (tensor, raw.then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: Vec<i64>, strings: &[&str]) -> pb::model_infer_request::InferInputTensor {
        pb::model_infer_request::InferInputTensor {
            name: name.into(),
            datatype: "BYTES".into(),
            shape,
            parameters: HashMap::new(),
            contents: Some(pb::InferTensorContents {
                bytes_contents: strings.iter().map(|s| s.as_bytes().to_vec()).collect(),
                ..Default::default()
            }),
        }
    }

    fn raw(strings: &[&str]) -> Vec<u8> {
        strings.iter().flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.bytes())).collect()
    }

    #[test]
    fn texts_come_from_typed_or_raw_contents() {
        let typed =
            pb::ModelInferRequest { inputs: vec![tensor("text", vec![2], &["a", "bé"])], ..Default::default() };
        assert_eq!(texts(&typed).unwrap(), vec![vec!["a".to_string(), "bé".to_string()]]);
        let mut t = tensor("text", vec![2, 1], &[]);
        t.contents = None;
        let raw_request =
            pb::ModelInferRequest { inputs: vec![t], raw_input_contents: vec![raw(&["a", ""])], ..Default::default() };
        assert_eq!(texts(&raw_request).unwrap(), vec![vec!["a".to_string(), String::new()]]);
    }

    #[test]
    fn malformed_tensors_are_refused_naming_why() {
        let mut t = tensor("text", vec![1], &[]);
        t.contents = None;
        let cut = |bytes: Vec<u8>| pb::ModelInferRequest {
            inputs: vec![t.clone()],
            raw_input_contents: vec![bytes],
            ..Default::default()
        };
        for (request, needle) in [
            (cut(vec![5, 0, 0, 0, b'a']), "inside an element"),
            (cut(vec![1, 0]), "inside a length prefix"),
            (cut(raw(&["a", "b"])), "shape [1]"),
            (cut(vec![2, 0, 0, 0, 0xff, 0xfe]), "not UTF-8"),
            (
                pb::ModelInferRequest {
                    inputs: vec![tensor("t", vec![1], &["a"])],
                    raw_input_contents: vec![raw(&["a"])],
                    ..Default::default()
                },
                "both",
            ),
            (
                pb::ModelInferRequest {
                    inputs: vec![t.clone(), t.clone()],
                    raw_input_contents: vec![raw(&["a"])],
                    ..Default::default()
                },
                "one per input",
            ),
        ] {
            let e = texts(&request).unwrap_err();
            assert!(matches!(e, ApiError::Validation(_)) && e.to_string().contains(needle), "{e}");
        }
        let mut fp = tensor("x", vec![1], &["a"]);
        fp.datatype = "FP32".into();
        let e = texts(&pb::ModelInferRequest { inputs: vec![fp], ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("BYTES"), "{e}");
    }

    #[test]
    fn outputs_are_raw_little_endian_or_typed() {
        let out = |data| ResponseOutput { name: "output-0", datatype: "FP32", shape: vec![1, 2], data };
        let (tensor, bytes) = encode(out(TensorData::Fp32(vec![1.0, -2.5])), true);
        assert!(tensor.contents.is_none());
        assert_eq!(bytes.unwrap(), [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat());
        assert_eq!(tensor.shape, vec![1, 2]);
        let (tensor, bytes) = encode(out(TensorData::Fp32(vec![1.0, -2.5])), false);
        assert_eq!((tensor.contents.unwrap().fp32_contents, bytes), (vec![1.0, -2.5], None));
        let (_, bytes) = encode(out(TensorData::Bytes(vec!["ab".into(), "".into()])), true);
        assert_eq!(bytes.unwrap(), raw(&["ab", ""]));
        let (_, bytes) = encode(out(TensorData::Int64(vec![3])), true);
        assert_eq!(bytes.unwrap(), 3i64.to_le_bytes());
    }
}
