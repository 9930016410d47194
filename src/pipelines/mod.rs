//! The four `transformers` pipelines: request parameters, input checks, and the post-processing that
//! turns raw model outputs into the pipelines' JSON shapes.

pub mod feature_extraction;
pub mod fill_mask;
mod params;
pub mod prompts;
pub mod text_classification;
pub mod token_classification;
pub mod zero_shot;

use serde::Serialize;

pub use crate::model::softmax;
use crate::model::{RawOutput, Task};
use crate::tokenize::{Encoded, InputError, TextTokenizer};

pub use feature_extraction::{
    DenseActivation, DenseModule, ModuleEntry, Pooling, PoolingConfig, PoolingDefaults, SparseValue, SpladeConfig,
};
pub use params::{Aggregation, ClassificationFn, ParamError, Params, TopK};
pub use prompts::{Prompts, SentenceBertConfig, SentenceTransformersConfig, UnknownPrompt};

/// Everything post-processing needs to know about the loaded model.
#[derive(Debug, Clone)]
pub struct PipelineInfo {
    pub task: Task,
    /// Label names by class index (classification tasks).
    pub labels: Vec<String>,
    pub problem_type: Option<String>,
    /// Sentence-embedding defaults from the sentence-transformers files.
    pub pooling: PoolingDefaults,
    /// The sentence-transformers `Dense` modules after pooling, in order (`2_Dense/`).
    pub dense: Vec<DenseModule>,
    /// Named prompts from `config_sentence_transformers.json` (empty without it).
    pub prompts: Prompts,
    /// True when the folder is a sentence-transformers model (`modules.json` or `1_Pooling/`):
    /// its embedding at `/` is the pooled sentence vector, as the Inference API serves it.
    pub sentence_transformers: bool,
}

/// One input's result, serialized exactly as the `transformers` pipeline returns it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Output {
    /// fill-mask with one mask: the candidates.
    FillMask(Vec<fill_mask::Candidate>),
    /// fill-mask with several masks: candidates per mask.
    FillMaskMulti(Vec<Vec<fill_mask::Candidate>>),
    /// feature-extraction without pooling: `[1][tokens][hidden]`, as the pipeline returns it.
    TokenEmbeddings(Vec<Vec<Vec<f32>>>),
    /// A pooled sentence embedding.
    Embedding(Vec<f32>),
    /// A SPLADE sparse embedding: the non-zero weights by ascending token id.
    Sparse(Vec<SparseValue>),
    /// text-classification: labels with scores.
    Labels(Vec<text_classification::LabelScore>),
    /// token-classification: entities (per token, or grouped).
    Entities(Vec<token_classification::Entity>),
}

/// Most mask tokens in one fill-mask input: each costs a vocabulary-wide row of logits on the
/// worker and `top_k` candidates, each with the whole sentence, in the response.
pub const MAX_MASKS: usize = 32;

/// Checks a tokenized input against what the task needs (fill-mask: a mask token, and at most
/// [`MAX_MASKS`]).
pub fn check_input(task: Task, encoded: &Encoded, tokenizer: &TextTokenizer) -> Result<(), InputError> {
    if task == Task::FillMask {
        let (mask, mask_id) =
            tokenizer.mask().ok_or_else(|| InputError::NoMaskToken { mask: "(the tokenizer has none)".into() })?;
        let masks = encoded.ids.iter().filter(|&&id| id == mask_id).count();
        if masks == 0 {
            return Err(InputError::NoMaskToken { mask: mask.to_string() });
        }
        if masks > MAX_MASKS {
            return Err(InputError::TooManyMasks { count: masks, max: MAX_MASKS });
        }
    }
    Ok(())
}

/// Bytes a JSON number takes in a response, on average (`-0.012345678,`).
const BYTES_PER_NUMBER: usize = 12;

/// Most bytes one sparse weight takes in a response (`{"index":250001,"value":1.2345678e-5},`).
const BYTES_PER_SPARSE_VALUE: usize = 40;

/// An upper estimate of the JSON bytes of one input's output, known before the model runs: the
/// per-token outputs (feature-extraction without pooling, fill-mask with its sentences) are the
/// ones that grow with the input.
pub fn response_bytes(
    info: &PipelineInfo,
    tokenizer: &TextTokenizer,
    encoded: &Encoded,
    params: &Params,
    hidden_size: usize,
) -> usize {
    match info.task {
        // At most one weight per vocabulary entry, whatever the input's length.
        Task::FeatureExtraction if info.pooling.pooling == Pooling::Splade => {
            tokenizer.vocab_size() * BYTES_PER_SPARSE_VALUE
        }
        Task::FeatureExtraction if params.pooling.unwrap_or(Pooling::None) == Pooling::None => {
            encoded.len() * hidden_size * BYTES_PER_NUMBER
        }
        Task::FeatureExtraction => {
            info.dense.last().map_or(hidden_size, |d| d.out_features.max(hidden_size)) * BYTES_PER_NUMBER
        }
        Task::FillMask => {
            let mask_id = tokenizer.mask().map(|(_, id)| id);
            let masks = encoded.ids.iter().filter(|&&id| Some(id) == mask_id).count();
            masks * params.fill_mask_top_k() * (encoded.text.len().min(encoded.len() * 16) + 96)
        }
        Task::TextClassification => info.labels.len().max(1) * 64,
        Task::TokenClassification => encoded.len() * (encoded.text.len().min(64) + 96),
    }
}

/// Error for a raw output that does not fit the task (a bug, never the client's fault).
#[derive(Debug, thiserror::Error)]
#[error("model output {0} does not match the task")]
pub struct OutputMismatch(&'static str);

/// Turns one raw model output into the pipeline's result for that input.
pub fn postprocess(
    info: &PipelineInfo,
    tokenizer: &TextTokenizer,
    encoded: &Encoded,
    raw: RawOutput,
    params: &Params,
) -> Result<Output, OutputMismatch> {
    match (info.task, raw) {
        (Task::FillMask, RawOutput::MaskTopK(candidates)) => {
            Ok(fill_mask::postprocess(tokenizer, encoded, &candidates))
        }
        (Task::FeatureExtraction, RawOutput::Sparse(weights)) => {
            Ok(Output::Sparse(weights.into_iter().map(|(index, value)| SparseValue { index, value }).collect()))
        }
        (Task::FeatureExtraction, RawOutput::Hidden(_)) if params.pooling == Some(Pooling::Splade) => {
            Err(OutputMismatch("hidden states for splade pooling"))
        }
        (Task::FeatureExtraction, RawOutput::Hidden(hidden)) => {
            Ok(feature_extraction::postprocess(&hidden, params, &info.pooling, &info.dense))
        }
        (Task::TextClassification, RawOutput::Logits(logits)) => {
            Ok(text_classification::postprocess(info, &logits, params))
        }
        (Task::TokenClassification, RawOutput::TokenLogits(logits)) => {
            Ok(token_classification::postprocess(info, tokenizer, encoded, &logits, params))
        }
        (_, RawOutput::Hidden(_)) => Err(OutputMismatch("hidden states")),
        (_, RawOutput::Logits(_)) => Err(OutputMismatch("logits")),
        (_, RawOutput::TokenLogits(_)) => Err(OutputMismatch("token logits")),
        (_, RawOutput::MaskLogits(_)) => Err(OutputMismatch("mask logits")),
        (_, RawOutput::MaskTopK(_)) => Err(OutputMismatch("mask candidates")),
        (_, RawOutput::Sparse(_)) => Err(OutputMismatch("sparse weights")),
    }
}

/// Index and value of the largest element (first one on ties, as numpy's argmax).
pub fn argmax(values: &[f32]) -> (usize, f32) {
    values
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[1] && p[1] > p[0]);
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), (1, 0.7));
    }
}
