//! The pipelines a model can serve, and how the task is chosen for a checkpoint.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A `transformers` pipeline task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    FillMask,
    FeatureExtraction,
    TextClassification,
    TokenClassification,
}

impl Task {
    /// The task a checkpoint was saved for, from its `architectures` entry (`BertForMaskedLM` → fill-mask).
    pub fn from_architecture(arch: &str) -> Option<Self> {
        // ELECTRA's pre-training checkpoint is the discriminator: a per-token replaced/original
        // score, no masked-LM head (that is the generator, `ElectraForMaskedLM`).
        if arch == "ElectraForPreTraining" {
            Some(Self::FeatureExtraction)
        } else if arch.ends_with("ForMaskedLM") || arch.ends_with("ForPreTraining") {
            Some(Self::FillMask)
        } else if arch.ends_with("ForSequenceClassification") {
            Some(Self::TextClassification)
        } else if arch.ends_with("ForTokenClassification") {
            Some(Self::TokenClassification)
        } else if arch.ends_with("Model") {
            Some(Self::FeatureExtraction)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FillMask => "fill-mask",
            Self::FeatureExtraction => "feature-extraction",
            Self::TextClassification => "text-classification",
            Self::TokenClassification => "token-classification",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Task {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "fill-mask" => Ok(Self::FillMask),
            "feature-extraction" | "sentence-embeddings" | "embeddings" => Ok(Self::FeatureExtraction),
            "text-classification" | "sentiment-analysis" => Ok(Self::TextClassification),
            "token-classification" | "ner" => Ok(Self::TokenClassification),
            _ => Err(format!(
                "unknown task {s:?}: expected fill-mask, feature-extraction, text-classification or token-classification"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_from_architecture_and_name() {
        assert_eq!(Task::from_architecture("BertForMaskedLM"), Some(Task::FillMask));
        assert_eq!(Task::from_architecture("DistilBertForSequenceClassification"), Some(Task::TextClassification));
        assert_eq!(Task::from_architecture("BertForTokenClassification"), Some(Task::TokenClassification));
        assert_eq!(Task::from_architecture("BertModel"), Some(Task::FeatureExtraction));
        assert_eq!(Task::from_architecture("BertForPreTraining"), Some(Task::FillMask));
        assert_eq!(Task::from_architecture("ElectraForPreTraining"), Some(Task::FeatureExtraction));
        assert_eq!(Task::from_architecture("ElectraForMaskedLM"), Some(Task::FillMask));
        assert_eq!(Task::from_architecture("BertLMHeadModelish"), None);
        assert_eq!("ner".parse::<Task>().unwrap(), Task::TokenClassification);
        assert!("summarization".parse::<Task>().is_err());
    }
}
