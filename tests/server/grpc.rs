//! KServe's Open Inference Protocol v2 over gRPC and `grpc.health.v1` on `--grpc-port`, on the real
//! binary with real clients: tritonclient's gRPC client, Triton's generated stubs and
//! grpcio-health-checking (tests/clients/check_grpc.py, from the repo's `.venv` that
//! `scripts/test.sh` installs; without it these tests FAIL, never skip). Answers are compared with
//! the transformers / sentence-transformers references the REST v2 tests use; errors with the
//! gRPC code each error maps to once; the edge (API key, shedding, deadline, request id, metrics,
//! access log) and the drain (health NOT_SERVING first, in-flight calls finished).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;
use common::server::Server;

/// A server with its gRPC port on a free port.
fn start(model: &str, args: &[&str]) -> Server {
    let mut all = vec!["--grpc-port", "0"];
    all.extend_from_slice(args);
    Server::start(model, &all)
}

/// The gRPC server's `host:port`, from its start-up log line.
fn grpc_addr(server: &Server) -> String {
    server
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "gRPC listening")
        .and_then(|v| v["address"].as_str().map(str::to_string))
        .expect("the gRPC server logs its address")
}

/// Runs one check of `check_grpc.py` against `server`; fails with its output.
fn check(name: &str, server: &Server, extra: &[&str]) {
    check_with("check_grpc.py", name, server, extra);
}

/// Runs one check of `tests/clients/{script}` against `server`; fails with its output, and when
/// it checked nothing.
fn check_with(script: &str, name: &str, server: &Server, extra: &[&str]) {
    let python = common::root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/test.sh, which installs the pinned clients", python.display());
    let output = Command::new(python)
        .arg(common::root().join("tests/clients").join(script))
        .args([name, &grpc_addr(server), &server.base])
        .args(extra)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("grpc_proxy")
        .output()
        .expect("run check_grpc.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "gRPC check {name} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok:"), "gRPC check {name} ran nothing:\n{stdout}");
}

/// TEI's `tei.v1` API (tests/clients/check_tei_grpc.py, stubs generated from proto/tei.proto).
fn check_tei(name: &str, server: &Server, model: &str) {
    check_with("check_tei_grpc.py", name, server, &[model]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tei_grpc_embed_tokenize_streams_and_errors_as_rest() {
    let model = "all-MiniLM-L6-v2";
    let server = start(model, &[]);
    tokio::task::block_in_place(|| check_tei("embeddings", &server, model));
    // Each stream message is a call of its own: counted, and logged with the stream's method.
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let series = |method: &str, code: &str| {
        format!("pipeserve_grpc_requests_total{{code=\"{code}\",method=\"/tei.v1.Embed/{method}\"}}")
    };
    assert!(common::server::metric_value(&text, &series("EmbedStream", "OK")) >= 7.0, "{text}");
    assert_eq!(common::server::metric_value(&text, &series("EmbedStream", "INVALID_ARGUMENT")), 1.0, "{text}");
    assert_eq!(common::server::metric_value(&text, &series("EmbedSparse", "FAILED_PRECONDITION")), 1.0, "{text}");
    assert!(server.logs().iter().any(|l| l.contains("\"route\":\"/tei.v1.Embed/EmbedStream\"")));
}

#[test]
fn tei_grpc_predict_and_pairs_on_a_classifier() {
    let model = "tiny-bert-sentiment";
    let server = start(model, &[]);
    check_tei("classification", &server, model);
}

#[test]
fn tei_grpc_rerank_on_a_cross_encoder() {
    let model = "tiny-bert-reranker";
    let server = start(model, &[]);
    check_tei("reranker", &server, model);
}

#[test]
fn no_grpc_port_unless_asked() {
    let server = Server::start("tiny-bert-st", &[]);
    assert!(!server.logs().iter().any(|l| l.contains("gRPC listening")));
}

#[tokio::test(flavor = "multi_thread")]
async fn tritonclient_grpc_embeddings_health_metadata_and_errors() {
    let model = "all-MiniLM-L6-v2";
    let server = start(model, &[]);
    tokio::task::block_in_place(|| check("embeddings", &server, &[model]));
    // Counted by method and code, logged one line per call with its request id.
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let series = |code: &str| {
        format!(
            "pipeserve_grpc_requests_total{{code=\"{code}\",method=\"/inference.GRPCInferenceService/ModelInfer\"}}"
        )
    };
    assert_eq!(common::server::metric_value(&text, &series("OK")), 3.0, "{text}");
    assert!(common::server::metric_value(&text, &series("INVALID_ARGUMENT")) >= 4.0, "{text}");
    assert_eq!(common::server::metric_value(&text, &series("NOT_FOUND")), 1.0);
    assert!(server.wait_log("\"request_id\":\"req-42\"", Duration::from_secs(2)));
    let line = server.logs().into_iter().find(|l| l.contains("\"request_id\":\"req-42\"")).unwrap();
    for field in ["\"protocol\":\"grpc\"", "\"status\":\"OK\"", "\"batch_size\":", "ModelInfer"] {
        assert!(line.contains(field), "{field} in {line}");
    }
    // kserve's InferenceGRPCClient (its own process: see check_kserve_grpc.py).
    tokio::task::block_in_place(|| check_with("check_kserve_grpc.py", "embeddings", &server, &[model]));
}

#[tokio::test(flavor = "multi_thread")]
async fn tritonclient_grpc_text_classification_and_pairs() {
    let model = "tiny-bert-sentiment";
    let server = start(model, &[]);
    tokio::task::block_in_place(|| check("classification", &server, &[model]));
    tokio::task::block_in_place(|| check_with("check_kserve_grpc.py", "classification", &server, &[model]));
}

#[test]
fn grpc_api_key_guards_models_not_health() {
    let model = "tiny-bert-st";
    let server = start(model, &["--api-key", "s3cret-key"]);
    check("api-key", &server, &[model, "s3cret-key"]);
}

#[test]
fn grpc_shedding_is_unavailable_with_retry_info_and_deadlines_are_deadline_exceeded() {
    let model = "all-MiniLM-L6-v2";
    let server = start(model, &["--max-wait", "3s", "--max-queue", "4", "--max-batch-size", "64"]);
    check("shed", &server, &[model]);
    drop(server);
    let server = start(model, &["--max-wait", "1s", "--request-timeout", "300ms"]);
    check("deadline", &server, &[model]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_flips_grpc_health_first_then_finishes_calls_in_flight() {
    let model = "all-MiniLM-L6-v2";
    // The call's batch waits for batch-mates past the drain delay: it is in flight when the
    // listeners close.
    let mut server = start(model, &["--drain-delay", "3s", "--max-wait", "5s", "--max-batch-size", "64"]);
    tokio::task::block_in_place(|| check("health", &server, &["SERVING"]));
    let python = common::root().join(".venv/bin/python");
    let in_flight = Command::new(python)
        .arg(common::root().join("tests/clients/check_grpc.py"))
        .args(["one", &grpc_addr(&server), &server.base, model])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("pipeserve_queue_depth").await < 1.0 {
        assert!(Instant::now() < deadline, "the call never reached the queue");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.sigterm();
    assert!(server.wait_log("shutdown signal", Duration::from_secs(2)));
    tokio::task::block_in_place(|| check("health", &server, &["NOT_SERVING"]));
    let output = tokio::task::block_in_place(|| in_flight.wait_with_output()).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the call in flight failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = server.wait_exit(Duration::from_secs(15)).expect("the server exits after the drain");
    assert!(status.success(), "{status:?}");
    assert!(server.logs().iter().any(|l| l.contains("shut down cleanly")));
}
