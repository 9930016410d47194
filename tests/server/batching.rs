//! The batching and hardening behaviour of the running server: dynamic batches form under load,
//! a lone request waits at most `max_wait`, a full queue answers 503 at once, timeouts answer 504,
//! and expired or cancelled inputs are handled without costing the worker. (A panicking batch is
//! tested at the worker's model seam with a fake model: src/batching/tests.rs.)

use crate::common;

use std::time::{Duration, Instant};

use common::server::Server;
use reqwest::Client;
use serde_json::{json, Value};

async fn embed(client: &Client, server: &Server, text: &str) -> reqwest::Response {
    client.post(server.url("/embed")).json(&json!({"inputs": text})).send().await.unwrap()
}

#[tokio::test]
async fn batches_form_under_concurrent_load() {
    let server = Server::start("all-MiniLM-L6-v2", &["--max-wait", "20ms", "--max-batch-size", "16"]);
    let client = Client::new();
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let (client, url) = (client.clone(), server.url("/embed"));
            tokio::spawn(async move {
                let text = format!("sentence number {i} with a few words");
                client.post(url).json(&json!({"inputs": text})).send().await.unwrap().status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let batches = server.metric("pipeserve_batch_size_count").await;
    let inputs = server.metric("pipeserve_batch_size_sum").await;
    assert_eq!(inputs, 48.0);
    assert!(batches < 48.0, "48 concurrent inputs ran in {batches} batches: no batching happened");
    let single = server.metric("pipeserve_batch_size_bucket{le=\"1\"}").await;
    assert!(single < batches, "some batch held more than one input");
}

#[tokio::test]
async fn a_lone_request_waits_for_the_deadline_and_no_longer() {
    let server = Server::start("all-MiniLM-L6-v2", &["--max-wait", "150ms"]);
    let client = Client::new();
    let started = Instant::now();
    assert_eq!(embed(&client, &server, "alone").await.status(), 200);
    let elapsed = started.elapsed();
    let waited = server.metric("pipeserve_queue_wait_seconds_sum").await;
    assert!(waited >= 0.14, "the batcher should wait for batch-mates until the deadline ({waited}s)");
    assert!(waited <= 0.15 + 0.06, "a lone request waited {waited}s, more than max_wait");
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
}

#[tokio::test]
async fn a_full_queue_sheds_at_once_with_retry_after() {
    // A long deadline and a big batch: inputs sit in the queue, which fills at 4.
    let server = Server::start("all-MiniLM-L6-v2", &["--max-wait", "3s", "--max-queue", "4", "--max-batch-size", "64"]);
    let client = Client::new();
    let waiting: Vec<_> = (0..4)
        .map(|i| {
            let (client, url) = (client.clone(), server.url("/embed"));
            tokio::spawn(async move {
                client.post(url).json(&json!({"inputs": format!("q {i}")})).send().await.unwrap().status()
            })
        })
        .collect();
    // Let them be admitted.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.metric("pipeserve_queue_depth").await < 4.0 {
        assert!(Instant::now() < deadline, "queue never filled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let r = embed(&client, &server, "one more").await;
        latencies.push(started.elapsed());
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_type"], "overloaded");
    }
    latencies.sort();
    assert!(latencies[9] < Duration::from_millis(100), "503s must be immediate: {latencies:?}");
    // Health stays reachable under overload.
    assert_eq!(client.get(server.url("/health/ready")).send().await.unwrap().status(), 200);
    for w in waiting {
        assert_eq!(w.await.unwrap(), 200, "queued requests still complete");
    }
    assert_eq!(server.metric("pipeserve_requests_shed_total").await, 10.0);
}

#[tokio::test]
async fn timed_out_and_cancelled_inputs_never_reach_the_model() {
    let server = Server::start("all-MiniLM-L6-v2", &["--max-wait", "1s", "--request-timeout", "300ms"]);
    let client = Client::new();
    let started = Instant::now();
    let r = embed(&client, &server, "too slow").await;
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_millis(800));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_type"], "timeout");

    // A client that gives up while queued.
    let impatient = Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    assert!(impatient.post(server.url("/embed")).json(&json!({"inputs": "bye"})).send().await.is_err());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.metric("pipeserve_inputs_expired_total").await, 1.0);
    assert_eq!(server.metric("pipeserve_inputs_cancelled_total").await, 1.0);
    assert_eq!(server.metric("pipeserve_batch_size_count").await, 0.0, "no batch ran");
    assert_eq!(server.metric("pipeserve_queue_depth").await, 0.0, "their slots are free");
}
