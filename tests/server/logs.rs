//! Log lines you can grep: with `--json-logs` every line is JSON; one line per request with route,
//! status, latency, queue wait, batch size and request id; never a request body; start-up logs
//! the configuration and how long loading and warm-up took.

use crate::common;

use std::time::{Duration, Instant};

use common::server::Server;
use reqwest::Client;
use serde_json::{json, Value};

const SECRET: &str = "zebra-unicorn-7f3a";

/// Waits (at most 10 s) for a log line matching `pred`; returns it with every line so far.
fn wait_line(server: &Server, pred: impl Fn(&Value) -> bool) -> (Value, Vec<String>) {
    let start = Instant::now();
    loop {
        let logs = server.logs();
        if let Some(v) = logs.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| pred(v)) {
            return (v, logs);
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no such log line in:\n{}", logs.join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn json_log_lines_hold_request_and_startup_fields() {
    let server = Server::start("tiny-bert-sentiment", &[]);
    let client = Client::new();
    let ok = client
        .post(server.url("/predict"))
        .header("x-request-id", "log-ok")
        .json(&json!({"inputs": [format!("I love {SECRET}"), "fine"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = client
        .post(server.url("/predict"))
        .header("x-request-id", "log-bad")
        .json(&json!({"inputs": SECRET, "parameters": {"no_such_parameter": SECRET}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let probe = client.get(server.url("/health/ready")).header("x-request-id", "log-probe").send().await.unwrap();
    assert_eq!(probe.status(), 200);

    let (line, _) = wait_line(&server, |v| v["message"] == "request" && v["request_id"] == "log-ok");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["route"], "/predict");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["status"], 200);
    assert!(line["latency_ms"].as_f64().unwrap() > 0.0, "{line}");
    assert!(line["queue_wait_ms"].as_f64().unwrap() >= 0.0, "{line}");
    let batch_size = line["batch_size"].as_u64().unwrap();
    assert!((1..=2).contains(&batch_size), "{line}");
    assert!(line.get("trace_id").is_none(), "tracing is off: {line}");

    // A request refused before the queue has no queue wait or batch.
    let (line, logs) = wait_line(&server, |v| v["message"] == "request" && v["request_id"] == "log-bad");
    assert_eq!(line["status"], 422);
    assert!(line.get("queue_wait_ms").is_none() && line.get("batch_size").is_none(), "{line}");

    // Every line is JSON; no body (nor the error text quoting it) is logged at info.
    let parsed: Vec<Value> =
        logs.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(logs.iter().all(|l| !l.contains(SECRET)), "a request body reached the log:\n{}", logs.join("\n"));
    // Probes are not worth a line at info.
    assert!(!parsed.iter().any(|v| v["request_id"] == "log-probe" && v["message"] == "request"));

    // Start-up: the configuration, the trace export setting, load and warm-up times.
    let find = |message: &str| {
        parsed
            .iter()
            .find(|v| v["message"].as_str().is_some_and(|m| m.starts_with(message)))
            .unwrap_or_else(|| panic!("no {message:?} line"))
    };
    assert!(find("starting pipeserve")["config"].as_str().unwrap().contains("max_batch_size"));
    assert!(find("trace export off").is_object());
    assert!(find("model loaded")["seconds"].as_f64().is_some());
    assert!(find("model warmed up")["seconds"].as_f64().is_some());
}
