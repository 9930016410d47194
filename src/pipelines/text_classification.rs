//! text-classification: label scores with softmax (single-label) or sigmoid (multi-label).

use serde::Serialize;

use super::{argmax, softmax, ClassificationFn, Output, Params, PipelineInfo, TopK};

/// A label with its score.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// The score function `transformers` picks when the request names none.
pub fn default_function(info: &PipelineInfo) -> ClassificationFn {
    match info.problem_type.as_deref() {
        Some("regression") => ClassificationFn::None,
        Some("multi_label_classification") => ClassificationFn::Sigmoid,
        _ if info.labels.len() == 1 => ClassificationFn::Sigmoid,
        _ => ClassificationFn::Softmax,
    }
}

pub fn postprocess(info: &PipelineInfo, logits: &[f32], params: &Params) -> Output {
    let scores = match params.function_to_apply.unwrap_or_else(|| default_function(info)) {
        ClassificationFn::Softmax => softmax(logits),
        ClassificationFn::Sigmoid => logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect(),
        ClassificationFn::None => logits.to_vec(),
    };
    let label = |i: usize| info.labels.get(i).cloned().unwrap_or_else(|| format!("LABEL_{i}"));
    if params.top_k == TopK::Default {
        let (best, score) = argmax(&scores);
        return Output::Labels(vec![LabelScore { label: label(best), score }]);
    }
    let mut all: Vec<LabelScore> =
        scores.iter().enumerate().map(|(i, &score)| LabelScore { label: label(i), score }).collect();
    // Stable sort: equal scores keep label order, as Python's sort does.
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    if let TopK::K(k) = params.top_k {
        all.truncate(k);
    }
    Output::Labels(all)
}
