//! Start-up as Kubernetes sees it: the server listens while the model loads (live 200, ready 503,
//! `/metrics` with `pipeserve_ready 0` and `pipeserve_model_loaded 0`, inference 503), turns ready
//! after; a hub model is fetched with the configured revision and token, and `--download-only`
//! fills the cache that a later, offline start loads from. The hub is a local stand-in.

use crate::common;

use std::time::{Duration, Instant};

use common::hub::FakeHub;
use common::server::Server;
use reqwest::Client;
use serde_json::{json, Value};

const MODEL: &str = "tiny-bert-st";

async fn get(client: &Client, server: &Server, path: &str) -> (u16, String) {
    let r = client.get(server.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_answer_while_the_model_loads() {
    let hub = FakeHub::start(common::model_dir(MODEL), true).await;
    let cache = tempfile::tempdir().unwrap();
    let endpoint = hub.endpoint();
    let env = [
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_HOME", cache.path().to_str().unwrap()),
        ("HF_TOKEN", "hf_test_token"),
    ];
    let server = Server::launch("acme/tiny-bert", &["--revision", "v1.2"], &env, "listening");
    let client = Client::new();

    // The weights are held back: the server is loading.
    assert_eq!(get(&client, &server, "/health/live").await.0, 200);
    let (status, body) = get(&client, &server, "/health/ready").await;
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()["status"].clone()), (503, json!("loading")));
    let metrics = get(&client, &server, "/metrics").await.1;
    assert_eq!(common::server::metric_value(&metrics, "pipeserve_ready"), 0.0);
    assert!(metrics.contains("pipeserve_model_loaded 0"), "{metrics}");
    let r = client.post(server.url("/predict")).json(&json!({"inputs": "hi"})).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().await.unwrap()["error_type"], "loading");

    hub.release();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&client, &server, "/health/ready").await.0 != 200 {
        assert!(Instant::now() < deadline, "never turned ready:\n{}", server.logs().join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = get(&client, &server, "/metrics").await.1;
    assert!(metrics.contains("pipeserve_model_loaded 1") && metrics.contains("pipeserve_ready 1"));
    let r = client.post(server.url("/predict")).json(&json!({"inputs": "hi"})).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // What the hub saw: the pinned revision and the token, on every file.
    let seen = hub.seen();
    assert!(seen.iter().any(|s| s.file == "model.safetensors"));
    assert!(seen.iter().all(|s| s.revision == "v1.2"), "{seen:?}");
    assert!(seen.iter().all(|s| s.authorization.as_deref() == Some("Bearer hf_test_token")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_only_fills_the_cache_for_an_offline_start() {
    let cache = tempfile::tempdir().unwrap();
    let home = cache.path().to_str().unwrap().to_string();
    {
        let hub = FakeHub::start(common::model_dir(MODEL), false).await;
        let endpoint = hub.endpoint();
        let binary = std::env::var("TEST_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pipeserve").to_owned());
        let output = tokio::process::Command::new(binary)
            .args(["--model", "acme/tiny-bert"])
            .env("PIPESERVE_DOWNLOAD_ONLY", "true")
            .env("HF_ENDPOINT", &endpoint)
            .env("HF_HOME", &home)
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    // The hub is gone (its port closed): the server starts from the cache alone, once as the hub
    // client would (the missing optional files fail fast), once with no network at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let endpoint = format!("http://{closed}");
    let server = Server::launch("acme/tiny-bert", &[], &[("HF_ENDPOINT", &endpoint), ("HF_HOME", &home)], "ready");
    let r = Client::new().post(server.url("/predict")).json(&json!({"inputs": "hello"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
    // Offline mode asks the hub nothing, not even for the optional files it lacks.
    let watcher = FakeHub::start(common::model_dir(MODEL), false).await;
    let endpoint = watcher.endpoint();
    let env = [
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_HOME", home.as_str()),
        ("HF_HUB_OFFLINE", "1"),
        ("PIPESERVE_DOWNLOAD_ONLY", "false"),
    ];
    let server = Server::launch("acme/tiny-bert", &[], &env, "ready");
    assert!(watcher.seen().is_empty(), "offline mode reached the hub: {:?}", watcher.seen());
    let r = Client::new().post(server.url("/predict")).json(&json!({"inputs": "hello"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// `--device` lists GPUs only, each once; a GPU list in a build without CUDA fails at start-up
/// with the rebuild hint instead of serving on the CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_list_is_gpus_only_and_needs_the_cuda_build() {
    let binary = std::env::var("TEST_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pipeserve").to_owned());
    let model = common::model_dir(MODEL).to_string_lossy().into_owned();
    let run = |device: &'static str| {
        let (binary, model) = (binary.clone(), model.clone());
        async move {
            let output = tokio::process::Command::new(binary)
                .args(["--model", &model, "--host", "127.0.0.1", "--port", "0", "--device", device])
                .output();
            let output = tokio::time::timeout(Duration::from_secs(60), output).await.expect("exits").unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
            (output.status.success(), text)
        }
    };
    let (ok, text) = run("cpu,cuda:0").await;
    assert!(!ok && text.contains("--instances"), "{text}");
    let (ok, text) = run("cuda:0,cuda:0").await;
    assert!(!ok && text.contains("cuda:0 twice"), "{text}");
    if !cfg!(feature = "cuda") {
        let (ok, text) = run("cuda:0,cuda:1").await;
        assert!(!ok && text.contains("--features cuda"), "{text}");
    }
}
