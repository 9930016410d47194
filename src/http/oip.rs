//! KServe's Open Inference Protocol (v2), the part its transports share: REST (src/http/kserve.rs)
//! and gRPC (src/grpc/oip.rs) are thin adapters that decode their own tensors into strings and call
//! in here, so model names, the model's tensors, the texts' checks, the pipeline's parameters and
//! the output per task are decided once. The output is one tensor, `output-0`, shaped as KServe's
//! huggingfaceserver answers the same task (README, "KServe v2"):
//! - feature-extraction: the pooled, normalized sentence embeddings, `FP32 [n, dim]`;
//! - text-classification: the best class id per input, `INT64 [n]`;
//! - fill-mask: the best token of each mask, decoded, per input, `BYTES [n]`;
//! - token-classification: the best label id per token, `INT64 [n, 1, tokens]`, up to the last word
//!   token (`-1` where a token has no label: the leading special token, and the padding of shorter
//!   inputs; the pipeline gives special tokens none).
//!
//! Nothing here knows a transport: errors are [`ApiError`]s, which each transport maps once (an
//! HTTP status, a gRPC code).

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AnyOfBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::api::EmbeddingParameters;
use super::error::ApiError;
use super::handlers::{embed_inputs, run, AppResult, EmbedOptions};
use super::layers::timeout::Deadline;
use crate::infer::{BatchStats, Infer, Input};
use crate::model::Task;
use crate::pipelines::{argmax, Output, Params, TopK};

/// The one version of the served model.
pub const VERSION: &str = "1";

/// The name of the one output tensor (huggingfaceserver's).
pub const OUTPUT: &str = "output-0";

/// Request-level parameters of the protocol itself, not of the pipeline: binary outputs over REST
/// (the REST adapter reads it; gRPC answers raw when asked raw).
const PROTOCOL_PARAMETERS: [&str; 1] = ["binary_data_output"];

/// A tensor's description in model metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: &'static str,
    pub datatype: &'static str,
    /// `-1`: any size.
    pub shape: Vec<i64>,
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

impl TensorData {
    /// The tensor as the protocol's raw bytes (gRPC's `raw_*_contents`, REST's binary tensor
    /// extension): little-endian values; each `BYTES` element a 4-byte little-endian length, then
    /// its bytes.
    pub fn into_raw(self) -> Vec<u8> {
        match self {
            TensorData::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Bytes(v) => {
                let mut bytes = Vec::with_capacity(v.iter().map(|s| s.len() + 4).sum());
                for s in v {
                    bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    bytes.extend_from_slice(s.as_bytes());
                }
                bytes
            }
        }
    }
}

/// The strings of a raw `BYTES` tensor (each element a 4-byte little-endian length, then its
/// bytes), each checked to be UTF-8.
pub fn raw_strings(mut bytes: &[u8]) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or("raw BYTES contents end inside a length prefix")?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err("raw BYTES contents end inside an element");
        }
        let (element, rest) = rest.split_at(len);
        out.push(std::str::from_utf8(element).map_err(|_| "an element is not UTF-8")?.to_string());
        bytes = rest;
    }
    Ok(out)
}

/// One output tensor.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseOutput {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// Fails unless `name` (and `version`, when given) is the served model.
pub fn check_model(served: &str, name: &str, version: Option<&str>) -> AppResult<()> {
    if name != served {
        return Err(ApiError::UnknownModel(name.chars().take(100).collect()));
    }
    match version {
        Some(v) if v != VERSION => {
            Err(ApiError::UnknownModel(format!("{name} version {}", v.chars().take(100).collect::<String>())))
        }
        _ => Ok(()),
    }
}

/// The model's input tensors (`text`, and `text_pair` for text-classification) and its one output.
pub fn model_tensors(infer: &Infer) -> (Vec<TensorMetadata>, Vec<TensorMetadata>) {
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
    (inputs, vec![TensorMetadata { name: OUTPUT, datatype, shape }])
}

/// Fails unless every output the client names is `output-0`.
pub fn check_outputs<'a>(names: impl IntoIterator<Item = &'a str>) -> AppResult<()> {
    for name in names {
        if name != OUTPUT {
            return Err(ApiError::Validation(format!("unknown output {name:?}: the one output is {OUTPUT:?}")));
        }
    }
    Ok(())
}

/// Fails unless input tensor `index` (`name`) is a `BYTES` tensor (texts).
pub fn check_datatype(index: usize, name: &str, datatype: &str) -> AppResult<()> {
    if datatype != "BYTES" {
        return Err(ApiError::Validation(format!(
            "inputs[{index}] ({name}): datatype {:?}, a text tensor is BYTES",
            datatype.chars().take(20).collect::<String>()
        )));
    }
    Ok(())
}

/// Fails unless `shape` holds exactly `count` elements.
pub fn check_shape(index: usize, name: &str, shape: &[i64], count: usize) -> AppResult<()> {
    let elements = shape.iter().try_fold(1u64, |n, &d| u64::try_from(d).ok().and_then(|d| n.checked_mul(d)));
    if elements != Some(count as u64) {
        return Err(ApiError::Validation(format!(
            "inputs[{index}] ({name}): shape {shape:?} does not hold the {count} strings sent"
        )));
    }
    Ok(())
}

/// The inputs of the texts of the request's tensors, in order: one column of texts, or two (text,
/// text pair) of the same length.
pub fn inputs(columns: Vec<Vec<String>>) -> AppResult<Vec<Input>> {
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

/// Runs the pipeline on `inputs` with the request's `parameters` (the pipeline's, those of
/// `/predict`, or `/embed`'s for feature-extraction) and shapes its outputs as `output-0`.
pub async fn infer(
    infer: &Infer,
    deadline: Deadline,
    inputs: Vec<Input>,
    mut raw: Map<String, Value>,
) -> AppResult<(ResponseOutput, BatchStats)> {
    for key in PROTOCOL_PARAMETERS {
        raw.remove(key);
    }
    // Triton's request-level `priority` (and ours: a class name), not a pipeline parameter.
    let priority = raw.remove("priority").map(|p| super::parse::priority(&p)).transpose()?.flatten();
    let deadline = deadline.with_priority(priority);
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
                words.push(infer.tokenizer().decode_as_transformers(&best, false));
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
