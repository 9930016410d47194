//! Request and response bodies of the HTTP API.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::infer::Input;
use crate::pipelines::Params;
use crate::tokenize::TruncationDirection;

/// `inputs`: one string, one text pair, or a list of them. A pair is `{"text", "text_pair"}` (the
/// `transformers` pipeline's form) or, inside a list, `[text, text_pair]` (TEI's batch form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
    /// One text pair.
    Pair(String, String),
    /// A list holding at least one pair.
    Mixed(Vec<Input>),
}

impl Inputs {
    /// The service's inputs, in order.
    pub fn into_vec(self) -> Vec<Input> {
        match self {
            Self::One(s) => vec![Input::Text(s)],
            Self::Many(v) => v.into_iter().map(Input::Text).collect(),
            Self::Pair(a, b) => vec![Input::Pair(a, b)],
            Self::Mixed(v) => v,
        }
    }

    /// One input (its answer is not wrapped in a list).
    pub fn is_one(&self) -> bool {
        matches!(self, Self::One(_) | Self::Pair(..))
    }
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn array_of(items: impl Into<RefOr<Schema>>) -> ArrayBuilder {
    ArrayBuilder::new().items(utoipa::openapi::schema::ArrayItems::RefOrSchema(Box::new(items.into())))
}

/// A text pair as an object or as a two-element list.
fn pair_schema() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .property("text", string())
                .property("text_pair", string())
                .required("text")
                .required("text_pair"),
        )
        .item(array_of(string()).min_items(Some(2)).max_items(Some(2)))
}

/// Deserialized by hand (below), so its schema is written by hand too. `anyOf`: `["a", "b"]` fits
/// both a list of texts and a pair, and is read as two texts.
impl PartialSchema for Inputs {
    fn schema() -> RefOr<Schema> {
        let item = OneOfBuilder::new().item(string()).item(pair_schema());
        AnyOfBuilder::new()
            .description(Some(
                "one text, one text pair, or a list of texts and pairs (a list of two texts is two texts)",
            ))
            .item(string())
            .item(pair_schema())
            .item(array_of(item))
            .into()
    }
}

impl ToSchema for Inputs {}

/// `{"text": ..., "text_pair": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairObject {
    text: String,
    text_pair: String,
}

/// One element of an `inputs` list.
struct Item(Input);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a {\"text\", \"text_pair\"} object or a [text, text_pair] list")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                Ok(Item(Input::Text(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Item, E> {
                Ok(Item(Input::Text(v)))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
                let p = PairObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Item(Input::Pair(p.text, p.text_pair)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                let mut parts: Vec<String> = Vec::with_capacity(2);
                while let Some(s) = seq.next_element::<String>()? {
                    if parts.len() == 2 {
                        return Err(de::Error::invalid_length(3, &self));
                    }
                    parts.push(s);
                }
                let mut parts = parts.into_iter();
                match (parts.next(), parts.next()) {
                    (Some(a), Some(b)) => Ok(Item(Input::Pair(a, b))),
                    (Some(a), None) => Ok(Item(Input::Text(a))),
                    _ => Err(de::Error::invalid_length(0, &self)),
                }
            }
        }
        d.deserialize_any(ItemVisitor)
    }
}

impl<'de> Deserialize<'de> for Inputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InputsVisitor;
        impl<'de> Visitor<'de> for InputsVisitor {
            type Value = Inputs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings (or text pairs)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Inputs, E> {
                Ok(Inputs::One(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Inputs, E> {
                Ok(Inputs::One(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Inputs, A::Error> {
                let p = PairObject::deserialize(de::value::MapAccessDeserializer::new(map)).map_err(|e| {
                    de::Error::custom(format!(
                        "{e}: expected a string or a list of strings, or a {{\"text\", \"text_pair\"}} pair"
                    ))
                })?;
                Ok(Inputs::Pair(p.text, p.text_pair))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inputs, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(Item(input)) = seq.next_element::<Item>()? {
                    all.push(input);
                }
                if all.iter().all(|i| matches!(i, Input::Text(_))) {
                    let texts = all.into_iter().filter_map(|i| if let Input::Text(t) = i { Some(t) } else { None });
                    return Ok(Inputs::Many(texts.collect()));
                }
                Ok(Inputs::Mixed(all))
            }
        }
        d.deserialize_any(InputsVisitor)
    }
}

/// `POST /predict`, in the style of the Hugging Face Inference API.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    pub inputs: Inputs,
    #[serde(default)]
    pub parameters: Params,
    /// Accepted for compatibility with the Inference API (`wait_for_model`, ...); ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub options: Option<serde_json::Value>,
}

/// `POST /embed`, compatible with text-embeddings-inference (same fields and defaults).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    pub inputs: Inputs,
    /// L2-normalize (default true, as TEI).
    #[serde(default)]
    pub normalize: Option<bool>,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    /// A prompt of the model's `config_sentence_transformers.json`, prepended to every input.
    #[serde(default)]
    pub prompt_name: Option<String>,
    /// Keep the first `dimensions` values (Matryoshka), then normalize.
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// The same settings as `huggingface_hub`'s `InferenceClient` sends them (it posts
    /// `{"inputs", "parameters"}` to whatever URL it is given); a setting may come either way.
    #[serde(default)]
    pub parameters: Option<EmbeddingParameters>,
}

/// Embedding settings inside `parameters`, as `InferenceClient.feature_extraction` sends them.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingParameters {
    pub normalize: Option<bool>,
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Option<TruncationDirection>,
    pub prompt_name: Option<String>,
    pub dimensions: Option<usize>,
    /// Only `float` (the client's default is to send none).
    pub encoding_format: Option<EncodingFormat>,
    /// `none` for per-token states; another mode pools that way (`/` and `/predict` only).
    pub pooling: Option<crate::pipelines::Pooling>,
}

/// `POST /embed_all` (TEI): per-token states.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedAllRequest {
    pub inputs: Inputs,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// `POST /embed_sparse` (TEI): SPLADE sparse embeddings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedSparseRequest {
    pub inputs: Inputs,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// `POST /rerank` (TEI): scores of (query, text) pairs from a cross-encoder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankRequest {
    pub query: String,
    pub texts: Vec<String>,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    /// The logits as they are, instead of their sigmoid.
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub return_text: bool,
}

/// One text of a `/rerank` answer; the list is sorted best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rank {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub score: f32,
}

/// `POST /tokenize` (TEI).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    pub inputs: Inputs,
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// One token of a `/tokenize` answer, as TEI writes it: `start`/`stop` are byte offsets into the
/// input, absent for special tokens.
#[derive(Debug, Serialize, PartialEq, Eq, ToSchema)]
pub struct SimpleToken {
    pub id: u32,
    pub text: String,
    pub special: bool,
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

/// `ids` of `/decode`: one sequence or several.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum InputIds {
    One(Vec<u32>),
    Many(Vec<Vec<u32>>),
}

/// `POST /decode` (TEI).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecodeRequest {
    pub ids: InputIds,
    #[serde(default = "yes")]
    pub skip_special_tokens: bool,
}

fn yes() -> bool {
    true
}

/// OpenAI's `input`: a string, strings, token ids, or lists of token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenAiInput {
    One(String),
    Many(Vec<String>),
    Ids(Vec<u32>),
    ManyIds(Vec<Vec<u32>>),
}

impl OpenAiInput {
    /// The service's inputs, in order.
    pub fn into_vec(self) -> Vec<Input> {
        match self {
            Self::One(s) => vec![Input::Text(s)],
            Self::Many(v) => v.into_iter().map(Input::Text).collect(),
            Self::Ids(ids) => vec![Input::Ids(ids)],
            Self::ManyIds(v) => v.into_iter().map(Input::Ids).collect(),
        }
    }
}

impl PartialSchema for OpenAiInput {
    fn schema() -> RefOr<Schema> {
        let ids = || array_of(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)));
        // anyOf: an empty list fits every list form.
        AnyOfBuilder::new()
            .description(Some("a string, strings, token ids of the served model, or lists of them"))
            .item(string())
            .item(array_of(string()))
            .item(ids())
            .item(array_of(ids()))
            .into()
    }
}

impl ToSchema for OpenAiInput {}

impl<'de> Deserialize<'de> for OpenAiInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            One(String),
            Many(Vec<String>),
            Ids(Vec<u32>),
            ManyIds(Vec<Vec<u32>>),
        }
        match Any::deserialize(d) {
            Ok(Any::One(s)) => Ok(Self::One(s)),
            Ok(Any::Many(v)) => Ok(Self::Many(v)),
            Ok(Any::Ids(v)) => Ok(Self::Ids(v)),
            Ok(Any::ManyIds(v)) => Ok(Self::ManyIds(v)),
            Err(_) => Err(de::Error::custom(
                "expected a string, a list of strings, a list of token ids or a list of lists of token ids",
            )),
        }
    }
}

/// What `/` and `/predict` answer: a list whose items depend on the served task (README).
pub struct PipelineOutput;

impl PartialSchema for PipelineOutput {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .description(Some(
                "fill-mask: [{score, token, token_str, sequence}] (a list per mask or input); \
                 text-classification: [[{label, score}]]; token-classification: [{entity or entity_group, \
                 score, word, start, end}]; feature-extraction: vectors, per-token states, or a SPLADE model's [{index, value}]; \
                 zero-shot-classification: [{label, score}]",
            ))
            .into()
    }
}

impl ToSchema for PipelineOutput {}

/// OpenAI `encoding_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

/// `POST /v1/embeddings`, compatible with the OpenAI embeddings API.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiEmbeddingsRequest {
    pub input: OpenAiInput,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    #[serde(default)]
    pub user: Option<String>,
    /// Keep the first `dimensions` values, then normalize.
    #[serde(default)]
    pub dimensions: Option<usize>,
}

/// One embedding in an OpenAI response: floats, or base64 of little-endian f32.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingValue {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiEmbedding {
    #[schema(value_type = String)]
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingValue,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiEmbeddingsResponse {
    #[schema(value_type = String)]
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
        let r: PredictRequest = serde_json::from_str(r#"{"inputs": {"text": "a", "text_pair": "b"}}"#).unwrap();
        assert_eq!(r.inputs, Inputs::Pair("a".into(), "b".into()));
        let r: PredictRequest =
            serde_json::from_str(r#"{"inputs": [["a", "b"], {"text": "c", "text_pair": "d"}, "e", ["f"]]}"#).unwrap();
        let pair = |a: &str, b: &str| Input::Pair(a.into(), b.into());
        assert_eq!(
            r.inputs.into_vec(),
            vec![pair("a", "b"), pair("c", "d"), Input::Text("e".into()), Input::Text("f".into())]
        );
        let e = serde_json::from_str::<PredictRequest>(r#"{"inputs": [["a", "b", "c"]]}"#).unwrap_err().to_string();
        assert!(e.contains("invalid length 3"), "{e}");
        let e = serde_json::from_str::<PredictRequest>(r#"{"inputs": 3}"#).unwrap_err().to_string();
        assert!(e.contains("a string or a list of strings"), "{e}");
        let e = serde_json::from_str::<PredictRequest>(r#"{"inputs": ["a", 1]}"#).unwrap_err().to_string();
        assert!(e.contains("expected a string"), "{e}");
        let e = serde_json::from_str::<PredictRequest>(r#"{"inputs": "a", "inputs": "b"}"#).unwrap_err().to_string();
        assert!(e.contains("duplicate field"), "{e}");
    }
}
