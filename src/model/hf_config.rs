//! The architecture-independent fields of a Hugging Face `config.json`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What the loader needs from `config.json` before it picks an architecture; each architecture
/// parses its own hyper-parameters from the same file.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
    /// Label names by class index; JSON keys are strings (`{"0": "NEGATIVE"}`).
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
    #[serde(default)]
    pub problem_type: Option<String>,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

impl HfConfig {
    /// Label names ordered by class index. A gap in the indices keeps the generic `LABEL_i`.
    pub fn labels(&self, num_labels: usize) -> Vec<String> {
        (0..num_labels)
            .map(|i| self.id2label.get(&i.to_string()).cloned().unwrap_or_else(|| format!("LABEL_{i}")))
            .collect()
    }

    /// The lower-cased model type (`bert`, `distilbert`, ...), from `model_type` or the architecture name.
    pub fn model_type(&self) -> String {
        if let Some(t) = &self.model_type {
            return t.to_ascii_lowercase();
        }
        let arch = self.architectures.first().map(String::as_str).unwrap_or_default();
        let arch = arch.to_ascii_lowercase();
        for known in ["xlmroberta", "distilbert", "roberta", "camembert", "mpnet", "bert"] {
            if arch.starts_with(known) {
                return if known == "xlmroberta" { "xlm-roberta".into() } else { known.into() };
            }
        }
        arch
    }
}
