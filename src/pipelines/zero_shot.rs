//! zero-shot-classification as the `transformers` pipeline does it: each candidate label becomes
//! the hypothesis `hypothesis_template.format(label)` of a (text, hypothesis) pair for an NLI
//! model, and the entailment logits become label scores.

use serde::Serialize;

use super::softmax;

/// The pipeline's default hypothesis.
pub const DEFAULT_TEMPLATE: &str = "This example is {}.";

/// A candidate label with its score (`InferenceClient.zero_shot_classification` reads a list of these).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// Why the model or the request cannot do zero-shot classification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZeroShotError {
    #[error("zero-shot classification needs an NLI model with an entailment label; this model's labels are {0:?}")]
    NotNli(Vec<String>),
    #[error("candidate_labels is empty: give at least one label")]
    NoLabels,
    #[error("hypothesis_template {0:?} has no {{}} for the label")]
    BadTemplate(String),
}

/// The classes the scores read: entailment (the first label starting with "entail", as the
/// pipeline looks it up) and contradiction (class 0, or the last class when entailment is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NliClasses {
    pub entailment: usize,
    pub contradiction: usize,
}

impl NliClasses {
    pub fn from_labels(labels: &[String]) -> Result<Self, ZeroShotError> {
        let entailment = labels
            .iter()
            .position(|l| l.to_lowercase().starts_with("entail"))
            .filter(|_| labels.len() >= 2)
            .ok_or_else(|| ZeroShotError::NotNli(labels.to_vec()))?;
        let contradiction = if entailment == 0 { labels.len() - 1 } else { 0 };
        Ok(Self { entailment, contradiction })
    }
}

/// The hypothesis for `label` (Python's `str.format` with one positional field).
pub fn hypothesis(template: &str, label: &str) -> Result<String, ZeroShotError> {
    if !template.contains("{}") {
        return Err(ZeroShotError::BadTemplate(template.to_string()));
    }
    Ok(template.replacen("{}", label, 1))
}

/// Scores of the candidate labels from each pair's logits (one row per label, in order), sorted
/// best first. `multi_label` (or a single label): each label on its own, softmax over
/// [contradiction, entailment]; otherwise a softmax of the entailment logits across labels.
pub fn scores(labels: &[String], logits: &[Vec<f32>], classes: NliClasses, multi_label: bool) -> Vec<LabelScore> {
    let scores: Vec<f32> = if multi_label || labels.len() == 1 {
        logits.iter().map(|row| softmax(&[row[classes.contradiction], row[classes.entailment]])[1]).collect()
    } else {
        softmax(&logits.iter().map(|row| row[classes.entailment]).collect::<Vec<_>>())
    };
    let mut out: Vec<LabelScore> =
        labels.iter().zip(scores).map(|(label, score)| LabelScore { label: label.clone(), score }).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entailment_is_found_by_name() {
        let c = NliClasses::from_labels(&labels(&["contradiction", "neutral", "entailment"])).unwrap();
        assert_eq!(c, NliClasses { entailment: 2, contradiction: 0 });
        let c = NliClasses::from_labels(&labels(&["ENTAILMENT", "neutral", "contradiction"])).unwrap();
        assert_eq!(c, NliClasses { entailment: 0, contradiction: 2 });
        assert!(NliClasses::from_labels(&labels(&["NEGATIVE", "POSITIVE"])).is_err());
    }

    #[test]
    fn single_and_multi_label_scores() {
        let c = NliClasses { entailment: 2, contradiction: 0 };
        let logits = vec![vec![0.0, 0.0, 2.0], vec![1.0, 0.0, 0.0]];
        let single = scores(&labels(&["a", "b"]), &logits, c, false);
        assert_eq!(single[0].label, "a");
        assert!((single.iter().map(|s| s.score).sum::<f32>() - 1.0).abs() < 1e-6);
        let multi = scores(&labels(&["a", "b"]), &logits, c, true);
        assert!((multi[0].score - 1.0 / (1.0 + (-2f32).exp())).abs() < 1e-6);
        assert!((multi[1].score - 1.0 / (1.0 + 1f32.exp())).abs() < 1e-6);
        assert_eq!(hypothesis(DEFAULT_TEMPLATE, "sports").unwrap(), "This example is sports.");
        assert!(hypothesis("no field", "x").is_err());
    }
}
