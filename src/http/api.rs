//! Request and response bodies of the HTTP API.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::pipelines::Params;

/// `inputs`: one string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
}

impl Inputs {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }

    pub fn is_one(&self) -> bool {
        matches!(self, Self::One(_))
    }
}

impl<'de> Deserialize<'de> for Inputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InputsVisitor;
        impl<'de> Visitor<'de> for InputsVisitor {
            type Value = Inputs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Inputs, E> {
                Ok(Inputs::One(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Inputs, E> {
                Ok(Inputs::One(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inputs, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(s) = seq.next_element::<String>()? {
                    all.push(s);
                }
                Ok(Inputs::Many(all))
            }
        }
        d.deserialize_any(InputsVisitor)
    }
}

/// `POST /predict`, in the style of the Hugging Face Inference API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    pub inputs: Inputs,
    #[serde(default)]
    pub parameters: Params,
    /// Accepted for compatibility with the Inference API (`wait_for_model`, ...); ignored.
    #[serde(default)]
    pub options: Option<serde_json::Value>,
}

/// `POST /embed`, compatible with text-embeddings-inference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    pub inputs: Inputs,
    /// L2-normalize (default true, as TEI).
    #[serde(default)]
    pub normalize: Option<bool>,
    #[serde(default)]
    pub truncate: Option<bool>,
}

/// OpenAI `encoding_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

/// `POST /v1/embeddings`, compatible with the OpenAI embeddings API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiEmbeddingsRequest {
    pub input: Inputs,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    #[serde(default)]
    pub user: Option<String>,
    /// Only the model's own width is supported.
    #[serde(default)]
    pub dimensions: Option<usize>,
}

/// One embedding in an OpenAI response: floats, or base64 of little-endian f32.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmbeddingValue {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize)]
pub struct OpenAiEmbedding {
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingValue,
}

#[derive(Debug, Serialize)]
pub struct OpenAiUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Serialize)]
pub struct OpenAiEmbeddingsResponse {
    pub object: &'static str,
    pub data: Vec<OpenAiEmbedding>,
    pub model: String,
    pub usage: OpenAiUsage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_accept_string_or_list_and_name_the_problem_otherwise() {
        let r: PredictRequest = serde_json::from_str(r#"{"inputs": "a"}"#).unwrap();
        assert_eq!(r.inputs, Inputs::One("a".into()));
        let r: PredictRequest = serde_json::from_str(r#"{"inputs": ["a", "b"]}"#).unwrap();
        assert_eq!(r.inputs, Inputs::Many(vec!["a".into(), "b".into()]));
        let e = serde_json::from_str::<PredictRequest>(r#"{"inputs": 3}"#).unwrap_err().to_string();
        assert!(e.contains("a string or a list of strings"), "{e}");
        let e = serde_json::from_str::<PredictRequest>(r#"{"inputs": ["a", 1]}"#).unwrap_err().to_string();
        assert!(e.contains("expected a string"), "{e}");
        let e = serde_json::from_str::<PredictRequest>(r#"{"inputs": "a", "inputs": "b"}"#).unwrap_err().to_string();
        assert!(e.contains("duplicate field"), "{e}");
    }
}
