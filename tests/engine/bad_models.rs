//! Bad model folders fail at load with one clear line naming the problem, never a panic.

use crate::common;

use std::fs;
use std::path::Path;

use pipeserve::load::{self, LoadConfig};
use pipeserve::model::{DTypeSpec, Task};

fn load_err(dir: &Path, task: Option<Task>) -> String {
    let config =
        LoadConfig { task, model: dir.to_string_lossy().into_owned(), ..common::load_config("tiny-bert-sentiment") };
    match load::load(&config) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "one line: {msg}");
            msg
        }
    }
}

fn expect(dir: &Path, task: Option<Task>, needles: &[&str]) {
    let msg = load_err(dir, task);
    for n in needles {
        assert!(msg.contains(n), "{msg:?} should contain {n:?}");
    }
}

#[test]
fn missing_folder() {
    expect(Path::new("/definitely/not/here"), None, &["does not exist"]);
}

#[test]
fn missing_files() {
    let d = common::copy_of("tiny-bert-sentiment");
    fs::remove_file(d.path().join("config.json")).unwrap();
    expect(d.path(), None, &["config.json is missing"]);

    let d = common::copy_of("tiny-bert-sentiment");
    fs::remove_file(d.path().join("model.safetensors")).unwrap();
    expect(d.path(), None, &["no weights", "model.safetensors"]);

    let d = common::copy_of("tiny-bert-sentiment");
    fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    fs::remove_file(d.path().join("vocab.txt")).unwrap();
    expect(d.path(), None, &["no tokenizer", "tokenizer.json or vocab.txt"]);
}

#[test]
fn tokenizer_json_falls_back_to_vocab_txt() {
    let d = common::copy_of("tiny-bert-sentiment");
    fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    let config =
        LoadConfig { model: d.path().to_string_lossy().into_owned(), ..common::load_config("tiny-bert-sentiment") };
    let with_vocab = common::loaded(&config).tokenizer;
    let original = common::loaded(&common::load_config("tiny-bert-sentiment")).tokenizer;
    let text = "Hello, Zürich! Tokenizers agree.";
    assert_eq!(with_vocab.encode(text, false).unwrap().ids, original.encode(text, false).unwrap().ids);
}

#[test]
fn corrupt_or_truncated_weights() {
    let d = common::copy_of("tiny-bert-sentiment");
    let path = d.path().join("model.safetensors");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    expect(d.path(), None, &["cannot read weights", "model.safetensors"]);

    fs::write(&path, b"this is not a safetensors file at all").unwrap();
    expect(d.path(), None, &["cannot read weights"]);

    let d = common::copy_of("tiny-bert-sentiment");
    fs::write(d.path().join("config.json"), "{ not json").unwrap();
    expect(d.path(), None, &["invalid", "config.json"]);

    let d = common::copy_of("tiny-bert-sentiment");
    fs::write(d.path().join("tokenizer.json"), "{\"version\": 1}").unwrap();
    expect(d.path(), None, &["invalid tokenizer", "tokenizer.json"]);
}

#[test]
fn shapes_that_do_not_match_the_config() {
    let d = common::copy_of("tiny-bert-sentiment");
    let path = d.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["hidden_size"] = 64.into();
    fs::write(&path, config.to_string()).unwrap();
    expect(d.path(), None, &["weights do not match config.json", "shape"]);
}

#[test]
fn a_missing_shard_is_named() {
    let d = common::copy_of("tiny-bert-sharded");
    fs::remove_file(d.path().join("model-00002-of-00002.safetensors")).unwrap();
    expect(d.path(), None, &["model-00002-of-00002.safetensors", "missing"]);
}

#[test]
fn unknown_architecture_and_unservable_tasks() {
    let d = common::copy_of("tiny-bert-sentiment");
    let path = d.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["model_type"] = "gpt2".into();
    config["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    fs::write(&path, config.to_string()).unwrap();
    expect(d.path(), None, &["unsupported architecture", "gpt2"]);

    let sentiment = common::model_dir("tiny-bert-sentiment");
    expect(&sentiment, Some(Task::FillMask), &["fill-mask", "BertForSequenceClassification"]);
    expect(&sentiment, Some(Task::TokenClassification), &["token-classification"]);
    let minilm = common::model_dir("all-MiniLM-L6-v2");
    expect(&minilm, Some(Task::TextClassification), &["text-classification", "classifier.weight"]);
    expect(&minilm, Some(Task::FillMask), &["masked-LM head"]);
}

#[tokio::test]
async fn any_checkpoint_serves_feature_extraction() {
    let infer = common::service_with("tiny-bert-ner", Some(Task::FeatureExtraction), DTypeSpec::F32);
    assert_eq!(infer.info().task, Task::FeatureExtraction);
    assert_eq!(common::run(&infer, &["hello"], &Default::default()).await.len(), 1);
}

#[test]
fn a_tokenizer_from_another_model_is_named() {
    let d = common::copy_of("tiny-bert-st");
    fs::remove_file(d.path().join("vocab.txt")).unwrap();
    fs::copy(common::model_dir("all-MiniLM-L6-v2").join("tokenizer.json"), d.path().join("tokenizer.json")).unwrap();
    expect(d.path(), None, &["tokenizer.json", "does not belong to this model", "30522 tokens", "vocab_size is 103"]);
}

/// A decoder checkpoint (Qwen3's configs name `Qwen3ForCausalLM`, embedder and reranker alike)
/// needs its task named; what it cannot serve, or a config it cannot run, is named in one line.
#[test]
fn qwen3_without_a_task_or_with_one_it_has_no_head_for() {
    let reranker = common::model_dir("tiny-qwen3-reranker");
    expect(&reranker, None, &["Qwen3ForCausalLM", "--task feature-extraction", "--task text-classification"]);
    expect(&reranker, Some(Task::FillMask), &["fill-mask", "masked-LM head"]);
    expect(&reranker, Some(Task::TokenClassification), &["token-classification", "score.weight"]);

    // A yes/no reranker reads its answer off the language-model head: untied and not shipped.
    let d = common::copy_of("tiny-qwen3-reranker");
    let path = d.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["tie_word_embeddings"] = false.into();
    fs::write(&path, config.to_string()).unwrap();
    expect(d.path(), Some(Task::TextClassification), &["text-classification", "lm_head.weight is missing"]);

    let d = common::copy_of("tiny-qwen3-embedding");
    let path = d.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["use_sliding_window"] = true.into();
    fs::write(&path, config.to_string()).unwrap();
    expect(d.path(), Some(Task::FeatureExtraction), &["config.json", "sliding-window attention is not supported"]);
}
