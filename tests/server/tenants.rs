//! Tenants on the real binary: keys from `--api-keys-file` (hashes only), token quotas (429 with
//! `Retry-After`, distinct from 503, others unaffected), a key rotated in the file taking effect
//! without a restart and without failing requests in flight, a broken file keeping the last good
//! keys, and the priority class from `x-priority` or the body, counted per tenant and class.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::server::Server;
use reqwest::Client;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the keys file as Kubernetes updates a Secret volume: the new contents appear at once
/// (a rename), never half-written.
fn write_keys(path: &Path, entries: &[Value]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json!({"keys": entries}).to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn entry(key: &str, tenant: &str, extra: Value) -> Value {
    let mut e = json!({"sha256": sha256_hex(key), "tenant": tenant});
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(extra.clone());
    }
    e
}

/// The sum of every series of `name` whose labels include each of `labels` (`k="v"`).
async fn series(server: &Server, name: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn embed(client: &Client, server: &Server, key: &str, inputs: Value) -> reqwest::Response {
    client.post(server.url("/embed")).bearer_auth(key).json(&json!({"inputs": inputs})).send().await.unwrap()
}

#[tokio::test]
async fn a_tenant_over_its_quota_gets_429_with_retry_after_and_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    write_keys(
        &file,
        &[
            entry("key-small", "small", json!({"tokens_per_minute": 60})),
            entry("key-big", "big", json!({"tokens_per_second": 1000000})),
        ],
    );
    let server = Server::start("all-MiniLM-L6-v2", &["--api-keys-file", file.to_str().unwrap()]);
    let client = Client::new();
    // About 150 tokens: let in while the bucket had tokens, it takes the minute's bucket into debt.
    let many: Vec<String> = (0..16).map(|i| format!("request number {i} of the small tenant")).collect();
    assert_eq!(embed(&client, &server, "key-small", json!(many)).await.status(), 200);
    let r = embed(&client, &server, "key-small", json!("hello")).await;
    assert_eq!(r.status(), 429, "over quota");
    let after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // About 90 tokens of debt at one token per second.
    assert!((30..=240).contains(&after), "Retry-After from the bucket: {after}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error_type"], "rate_limit_exceeded", "{v}");
    // OpenAI's shape names it too.
    let r = client
        .post(server.url("/v1/embeddings"))
        .bearer_auth("key-small")
        .json(&json!({"input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"]["type"].as_str(), v["error"]["code"].as_str()),
        (Some("rate_limit_error"), Some("rate_limit_exceeded"))
    );
    // The other tenant is served all along.
    for _ in 0..5 {
        assert_eq!(embed(&client, &server, "key-big", json!(many)).await.status(), 200);
    }
    let limited =
        series(&server, "pipeserve_tenant_requests_total", &[r#"tenant="small""#, r#"outcome="rate_limited""#]).await;
    assert_eq!(limited, 2.0);
    assert_eq!(
        series(&server, "pipeserve_tenant_requests_total", &[r#"tenant="big""#, r#"outcome="rate_limited""#]).await,
        0.0
    );
    assert!(series(&server, "pipeserve_tenant_tokens_total", &[r#"tenant="big""#]).await > 500.0);
    assert_eq!(series(&server, "pipeserve_requests_shed_total", &[]).await, 0.0, "429 is not a 503");
}

#[tokio::test]
async fn a_key_rotated_in_the_file_takes_effect_without_a_restart_or_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    write_keys(&file, &[entry("old-key", "search", json!({}))]);
    // A long timeout: the requests in flight below must be admitted, not shed, on a machine that
    // the suite's other servers load (admission is not what this test is about).
    let args = ["--api-keys-file", file.to_str().unwrap(), "--api-key", "single", "--request-timeout", "120s"];
    let server = Server::start("all-MiniLM-L6-v2", &args);
    let client = Client::new();
    assert_eq!(embed(&client, &server, "old-key", json!("hello")).await.status(), 200);
    assert_eq!(embed(&client, &server, "new-key", json!("hello")).await.status(), 401);
    // Requests in flight under the old key, admitted before the rotation.
    let long: Vec<String> =
        (0..32).map(|i| format!("in flight {i}: {}", "many words in a longer text ".repeat(8))).collect();
    let admitted =
        series(&server, "pipeserve_tenant_requests_total", &[r#"tenant="search""#, r#"outcome="admitted""#]).await;
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, long) = (client.clone(), server.url("/embed"), long.clone());
            tokio::spawn(async move {
                client.post(url).bearer_auth("old-key").json(&json!({"inputs": long})).send().await.unwrap().status()
            })
        })
        .collect();
    let started = Instant::now();
    while series(&server, "pipeserve_tenant_requests_total", &[r#"tenant="search""#, r#"outcome="admitted""#]).await
        < admitted + 4.0
    {
        if started.elapsed() > Duration::from_secs(30) {
            let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
            let tenant: Vec<&str> =
                text.lines().filter(|l| l.starts_with("pipeserve_tenant_requests_total{")).collect();
            panic!("the requests in flight were never admitted: {tenant:#?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rotated = Instant::now();
    write_keys(&file, &[entry("new-key", "search", json!({}))]);
    // The watcher polls every second. Waiting on its log line, not on probe requests: those queue
    // behind the requests in flight, which on a loaded machine took seconds each.
    assert!(server.wait_log("API keys file reloaded", Duration::from_secs(5)), "the file was not re-read within 5 s");
    let rotation_ms = rotated.elapsed().as_millis();
    assert_eq!(
        embed(&client, &server, "old-key", json!("hello")).await.status(),
        401,
        "the old key after the rotation"
    );
    assert_eq!(
        embed(&client, &server, "new-key", json!("hello")).await.status(),
        200,
        "the new key after the rotation"
    );
    println!("TENANTS {{\"rotation_ms\": {rotation_ms}}}");
    for t in in_flight {
        assert_eq!(t.await.unwrap(), 200, "a request in flight during the rotation");
    }
    // A broken file keeps the last good keys, and says why.
    std::fs::write(&file, "{\"keys\": [{\"sha256\": \"not hex\"").unwrap();
    assert!(server.wait_log("API keys file is invalid", Duration::from_secs(5)));
    assert_eq!(embed(&client, &server, "new-key", json!("hello")).await.status(), 200);
    assert_eq!(embed(&client, &server, "old-key", json!("hello")).await.status(), 401);
    // The single --api-key works beside the file, as tenant `default`.
    assert_eq!(embed(&client, &server, "single", json!("hello")).await.status(), 200);
    assert!(series(&server, "pipeserve_tenant_tokens_total", &[r#"tenant="default""#]).await > 0.0);
}

#[tokio::test]
async fn the_class_comes_from_the_header_the_body_or_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    write_keys(
        &file,
        &[entry("k-index", "indexer", json!({"priority": "batch"})), entry("k-search", "search", json!({}))],
    );
    let server = Server::start("all-MiniLM-L6-v2", &["--api-keys-file", file.to_str().unwrap()]);
    let client = Client::new();
    let class = |tenant: &'static str, class: &'static str| {
        let server = &server;
        async move {
            let (t, c) = (format!("tenant=\"{tenant}\""), format!("class=\"{class}\""));
            series(server, "pipeserve_tenant_requests_total", &[&t, &c, r#"outcome="admitted""#]).await
        }
    };
    // The tenant's default, then the header overriding it, then a numeric level (Triton's 1).
    embed(&client, &server, "k-index", json!("a")).await;
    assert_eq!(class("indexer", "batch").await, 1.0);
    let r = client.post(server.url("/embed")).bearer_auth("k-index").header("x-priority", "interactive");
    assert_eq!(r.json(&json!({"inputs": "a"})).send().await.unwrap().status(), 200);
    assert_eq!(class("indexer", "interactive").await, 1.0);
    let r = client.post(server.url("/embed")).bearer_auth("k-search").header("x-priority", "2");
    assert_eq!(r.json(&json!({"inputs": "a"})).send().await.unwrap().status(), 200);
    assert_eq!(class("search", "batch").await, 1.0);
    // The Inference API's options.priority and KServe v2's parameters.priority.
    let r = client.post(server.url("/")).bearer_auth("k-search");
    let r = r.json(&json!({"inputs": "a", "options": {"priority": "batch"}})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(class("search", "batch").await, 2.0);
    let body = json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}], "parameters": {"priority": 5}});
    let r = client.post(server.url("/v2/models/all-MiniLM-L6-v2/infer")).bearer_auth("k-search").json(&body);
    assert_eq!(r.send().await.unwrap().status(), 200);
    assert_eq!(class("search", "batch").await, 3.0);
    // An unknown class is the client's error.
    let r = client.post(server.url("/embed")).bearer_auth("k-search").header("x-priority", "urgent");
    let r = r.json(&json!({"inputs": "a"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = client.post(server.url("/")).bearer_auth("k-search");
    let r = r.json(&json!({"inputs": "a", "options": {"priority": "urgent"}})).send().await.unwrap();
    assert_eq!(r.status(), 422);
}
