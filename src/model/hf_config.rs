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
    #[serde(default)]
    pub hidden_size: Option<usize>,
    /// ELECTRA's embedding width, when it differs from `hidden_size` (a projection joins them).
    #[serde(default)]
    pub embedding_size: Option<usize>,
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
        for known in ["xlmroberta", "distilbert", "roberta", "camembert", "mpnet", "electra", "bert"] {
            if arch.starts_with(known) {
                return if known == "xlmroberta" { "xlm-roberta".into() } else { known.into() };
            }
        }
        arch
    }

    /// Whether the token embeddings are as wide as the encoder (ELECTRA's may be narrower, with a
    /// projection between them; every other architecture's are).
    pub fn embeddings_match_hidden(&self) -> bool {
        let default = (self.model_type() == "electra").then_some(ELECTRA_EMBEDDING_SIZE);
        match (self.embedding_size.or(default), self.hidden_size) {
            (Some(width), Some(hidden)) => width == hidden,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

/// `ElectraConfig`'s default `embedding_size`, for a config.json that leaves it out.
pub const ELECTRA_EMBEDDING_SIZE: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> HfConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn electra_embeddings_are_projected_unless_as_wide_as_the_encoder() {
        let electra = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"model_type": "electra", "hidden_size": 256});
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            config(c)
        };
        // electra-small-discriminator: 128 → 256; ElectraConfig's default is 128.
        assert!(!electra(serde_json::json!({"embedding_size": 128})).embeddings_match_hidden());
        assert!(!electra(serde_json::json!({})).embeddings_match_hidden());
        assert!(electra(serde_json::json!({"embedding_size": 256})).embeddings_match_hidden());
        assert!(config(serde_json::json!({"model_type": "bert", "hidden_size": 384})).embeddings_match_hidden());
        let guessed = config(serde_json::json!({"architectures": ["ElectraForSequenceClassification"]}));
        assert_eq!(guessed.model_type(), "electra");
    }
}
