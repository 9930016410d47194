//! Pipeline parameters as the Hugging Face Inference API names them (`top_k`, `truncate`,
//! `aggregation_strategy`, ...), with the checks that make a bad one a clear 422.

use serde::{Deserialize, Deserializer};

use crate::model::Task;
use crate::tokenize::{Truncation, TruncationDirection};

/// `top_k` as `transformers` reads it: absent (pipeline default), `null` (all), or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopK {
    #[default]
    Default,
    All,
    K(usize),
}

fn top_k<'de, D: Deserializer<'de>>(d: D) -> Result<TopK, D::Error> {
    Ok(match Option::<usize>::deserialize(d)? {
        None => TopK::All,
        Some(k) => TopK::K(k),
    })
}

/// Token-classification aggregation (`aggregation_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    #[default]
    None,
    Simple,
    First,
    Average,
    Max,
}

/// Score function for text classification (`function_to_apply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClassificationFn {
    Softmax,
    Sigmoid,
    None,
}

/// Request parameters; which ones apply depends on the task.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// fill-mask: candidates per mask (default 5). text-classification: labels returned
    /// (absent: the best one; `null`: all).
    #[serde(default, deserialize_with = "top_k")]
    #[schema(value_type = Option<usize>)]
    pub top_k: TopK,
    /// Cut inputs longer than the model's limit instead of rejecting them.
    pub truncate: Option<bool>,
    /// Which end `truncate` cuts (TEI's field; default right: the end).
    pub truncation_direction: Option<TruncationDirection>,
    /// token-classification: none, simple, first, average or max.
    pub aggregation_strategy: Option<Aggregation>,
    /// token-classification: entity labels to leave out (default `["O"]`).
    pub ignore_labels: Option<Vec<String>>,
    /// text-classification: softmax, sigmoid or none (default from the model config).
    pub function_to_apply: Option<ClassificationFn>,
    /// feature-extraction: none (per-token states), mean, cls, max or mean_sqrt_len; splade
    /// (sparse embeddings) on a SPLADE model, whose only mode it is.
    pub pooling: Option<super::Pooling>,
    /// feature-extraction: L2-normalize pooled embeddings.
    pub normalize: Option<bool>,
    /// How many leading tokens of each input are the prompt the embedding routes prepended
    /// ([`super::prompts::prompt_tokens`]); left out of pooling when the model's pooling config
    /// says `include_prompt: false`. Set by the server, never by the client.
    #[serde(skip)]
    pub prompt_tokens: usize,
}

/// A parameter the task does not accept, or a value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("parameter {name} does not apply to {task}")]
    NotForTask { name: &'static str, task: Task },
    #[error("parameter {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Params {
    /// Rejects parameters that do not apply to `task` and values out of range.
    pub fn validate(&self, task: Task) -> Result<(), ParamError> {
        let given = [
            ("top_k", self.top_k != TopK::Default, &[Task::FillMask, Task::TextClassification][..]),
            ("aggregation_strategy", self.aggregation_strategy.is_some(), &[Task::TokenClassification][..]),
            ("ignore_labels", self.ignore_labels.is_some(), &[Task::TokenClassification][..]),
            ("function_to_apply", self.function_to_apply.is_some(), &[Task::TextClassification][..]),
            ("pooling", self.pooling.is_some(), &[Task::FeatureExtraction][..]),
            ("normalize", self.normalize.is_some(), &[Task::FeatureExtraction][..]),
        ];
        for (name, present, tasks) in given {
            if present && !tasks.contains(&task) {
                return Err(ParamError::NotForTask { name, task });
            }
        }
        match self.top_k {
            TopK::K(0) => Err(ParamError::Invalid { name: "top_k", reason: "must be at least 1".into() }),
            TopK::All if task == Task::FillMask => {
                Err(ParamError::Invalid { name: "top_k", reason: "must be a number for fill-mask".into() })
            }
            _ => Ok(()),
        }
    }

    /// `pooling` against what the model serves: a SPLADE model (`model` is
    /// [`super::Pooling::Splade`]) serves sparse embeddings only, and only it serves them.
    pub fn check_pooling(&self, model: super::Pooling) -> Result<(), ParamError> {
        use super::Pooling::Splade;
        match self.pooling {
            Some(p) if model == Splade && p != Splade => Err(ParamError::Invalid {
                name: "pooling",
                reason: format!(
                    "{} is not served: this SPLADE model serves sparse embeddings (splade) only",
                    p.as_str()
                ),
            }),
            Some(Splade) if model != Splade => Err(ParamError::Invalid {
                name: "pooling",
                reason: "splade needs a masked-LM served with --pooling splade (or a SparseEncoder folder)".into(),
            }),
            _ if model == Splade && self.normalize == Some(true) => Err(ParamError::Invalid {
                name: "normalize",
                reason: "sparse (splade) embeddings are not normalized".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Candidates per mask for fill-mask.
    pub fn fill_mask_top_k(&self) -> usize {
        match self.top_k {
            TopK::K(k) => k,
            _ => 5,
        }
    }

    /// What to do with an over-long input: `truncate` (else `default_truncate`, the server's
    /// `--auto-truncate`) from `truncation_direction`'s side.
    pub fn truncation(&self, default_truncate: bool) -> Truncation {
        Truncation::new(self.truncate.unwrap_or(default_truncate), self.truncation_direction.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn top_k_absent_null_and_number_differ() {
        assert_eq!(parse("{}").top_k, TopK::Default);
        assert_eq!(parse(r#"{"top_k": null}"#).top_k, TopK::All);
        assert_eq!(parse(r#"{"top_k": 3}"#).top_k, TopK::K(3));
    }

    #[test]
    fn parameters_are_checked_against_the_task() {
        assert!(parse(r#"{"aggregation_strategy": "simple"}"#).validate(Task::TokenClassification).is_ok());
        let err = parse(r#"{"aggregation_strategy": "simple"}"#).validate(Task::FillMask).unwrap_err();
        assert!(err.to_string().contains("aggregation_strategy"), "{err}");
        assert!(parse(r#"{"top_k": 0}"#).validate(Task::FillMask).is_err());
        assert!(serde_json::from_str::<Params>(r#"{"topk": 3}"#).is_err());
    }
}
