//! Traces through a real OTLP receiver (tests/otlp_receiver.py, gRPC and HTTP/protobuf): span
//! names, parent/child links, the batch span's links to each request, the client's `traceparent`
//! carried through, and nothing sent with tracing off.
//!
//! The receiver needs `.venv` (scripts/test.sh makes it). Without it these tests are skipped with a
//! message, except under CI (`CI` set), where they fail.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use reqwest::Client;
use serde_json::{json, Value};

const MODEL: &str = "tiny-bert-sentiment";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The Python OTLP receiver; killed on drop.
struct Receiver {
    child: Child,
    out: PathBuf,
    grpc: u16,
    http: u16,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts the receiver, or `None` (test skipped) when its venv is missing outside CI.
    fn start() -> Option<Self> {
        let python = common::root().join(".venv/bin/python");
        if !python.exists() {
            let message = format!("{} is missing: run scripts/test.sh to install the OTLP receiver", python.display());
            assert!(std::env::var_os("CI").is_none(), "{message}");
            eprintln!("skipped: {message}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let mut child = Command::new(python)
            .arg(common::root().join("tests/otlp_receiver.py"))
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let ports: Value =
            match rx.recv_timeout(Duration::from_secs(60)).ok().and_then(|l| serde_json::from_str(&l).ok()) {
                Some(ports) => ports,
                None => {
                    let _ = child.kill();
                    panic!("the OTLP receiver did not start");
                }
            };
        let port = |k: &str| ports[k].as_u64().unwrap() as u16;
        Some(Self { grpc: port("grpc"), http: port("http"), child, out, _dir: dir })
    }

    /// Every line written so far: spans, and one `{"export": ...}` line per export call.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("receiver lines are JSON"))
            .collect()
    }

    fn spans(&self) -> Vec<Value> {
        self.lines().into_iter().filter(|l| l.get("name").is_some()).collect()
    }

    /// Waits (at most 20 s) until `done` holds for the spans received, and returns them.
    fn wait_for(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "spans never arrived; got:\n{spans:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn request_span<'a>(spans: &'a [Value], trace_id: &str) -> Option<&'a Value> {
    spans.iter().find(|s| s["name"] == "request" && s["trace_id"] == trace_id)
}

fn links_to(batch: &Value, span: &Value) -> bool {
    batch["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["span_id"] == span["span_id"] && l["trace_id"] == span["trace_id"])
}

async fn predict(server: &Server, text: &str, traceparent: Option<&str>) -> reqwest::Response {
    let mut request = Client::new().post(server.url("/predict")).json(&json!({"inputs": text}));
    if let Some(tp) = traceparent {
        request = request.header("traceparent", tp);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

fn stop(mut server: Server) -> Vec<String> {
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(30)).expect("server exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    server.logs()
}

#[tokio::test]
async fn grpc_export_follows_a_request_through_queue_batch_and_model() {
    let Some(receiver) = Receiver::start() else { return };
    let endpoint = format!("http://127.0.0.1:{}", receiver.grpc);
    // Two inputs per batch and a long wait for batch-mates: the two requests share one batch.
    let args = ["--otlp-endpoint", &endpoint, "--max-batch-size", "2", "--max-wait", "2s", "--drain-delay", "0s"];
    let env = [
        ("OTEL_SERVICE_NAME", "pipeserve-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
        // Spans still buffered at exit are flushed by the shutdown, not by this timer.
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
    ];
    let server = Server::start_with_env(MODEL, &args, &env);
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (a, b) = tokio::join!(predict(&server, "I love it", Some(&traceparent)), predict(&server, "I hate it", None));

    // The response names the trace: the client's own, or a new one.
    assert_eq!(header(&a, "x-trace-id").as_deref(), Some(CLIENT_TRACE));
    let a_parent = header(&a, "traceparent").unwrap();
    assert!(a_parent.starts_with(&format!("00-{CLIENT_TRACE}-")) && a_parent.ends_with("-01"), "{a_parent}");
    let b_trace = header(&b, "x-trace-id").unwrap();
    assert!(b_trace.len() == 32 && b_trace != CLIENT_TRACE, "{b_trace}");
    let a_id = header(&a, "x-request-id").unwrap();

    // SIGTERM: the server flushes its spans on the way out.
    let logs = stop(server);
    let spans = receiver.wait_for(|s| {
        request_span(s, CLIENT_TRACE).is_some()
            && request_span(s, &b_trace).is_some()
            && !named(s, "model.forward").is_empty()
    });
    assert!(spans.iter().all(|s| s["transport"] == "grpc"));

    // The request span continues the client's trace, as a server span under the client's span.
    let req_a = request_span(&spans, CLIENT_TRACE).unwrap();
    assert_eq!(req_a["parent_span_id"], CLIENT_SPAN);
    assert_eq!(req_a["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(req_a["attributes"]["http.response.status_code"], 200);
    assert_eq!(a_parent, format!("00-{CLIENT_TRACE}-{}-01", req_a["span_id"].as_str().unwrap()));
    assert_eq!(req_a["resource"]["service.name"], "pipeserve-test");
    assert_eq!(req_a["resource"]["deployment.environment"], "test");
    let req_b = request_span(&spans, &b_trace).unwrap();
    assert_eq!(req_b["parent_span_id"], "", "no traceparent: a new root");

    // Each stage is a child of its request span.
    for req in [req_a, req_b] {
        for stage in ["validate", "tokenize", "queue_wait", "postprocess"] {
            let children: Vec<_> = named(&spans, stage)
                .into_iter()
                .filter(|s| s["trace_id"] == req["trace_id"] && s["parent_span_id"] == req["span_id"])
                .collect();
            assert_eq!(children.len(), 1, "{stage} under {req}\n{spans:#?}");
        }
    }

    // One batch ran both inputs: its own root span, linked to both request spans. (The warm-up's
    // batch, before the server was ready, links to no request.)
    let batches: Vec<_> =
        named(&spans, "batch").into_iter().filter(|b| links_to(b, req_a) || links_to(b, req_b)).collect();
    assert_eq!(batches.len(), 1, "{batches:#?}");
    let batch = batches[0];
    assert_eq!(batch["parent_span_id"], "");
    assert!(links_to(batch, req_a) && links_to(batch, req_b), "{batch}");
    assert_eq!(batch["attributes"]["batch.size"], 2);
    assert!(batch["attributes"]["batch.tokens"].as_i64().unwrap() >= 4);
    assert!(batch["attributes"]["batch.padding_ratio"].as_f64().is_some());
    let forward: Vec<_> =
        named(&spans, "model.forward").into_iter().filter(|f| f["parent_span_id"] == batch["span_id"]).collect();
    assert_eq!(forward.len(), 1);
    assert_eq!(forward[0]["parent_span_id"], batch["span_id"]);
    assert_eq!(forward[0]["trace_id"], batch["trace_id"]);

    // The request's log line carries its trace id.
    let line = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "request" && v["request_id"] == a_id.as_str())
        .expect("an access log line for request a");
    assert_eq!(line["trace_id"], CLIENT_TRACE);
    assert_eq!(line["batch_size"], 2);
}

#[tokio::test]
async fn http_protobuf_export_from_the_standard_variables() {
    let Some(receiver) = Receiver::start() else { return };
    let endpoint = format!("http://127.0.0.1:{}", receiver.http);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let server = Server::start_with_env(MODEL, &["--max-wait", "0ms"], &env);
    let response = predict(&server, "I love it", None).await;
    let trace = header(&response, "x-trace-id").unwrap();

    // Exported by the batch timer while the server runs.
    let spans = receiver.wait_for(|s| request_span(s, &trace).is_some() && !named(s, "batch").is_empty());
    assert!(spans.iter().all(|s| s["transport"] == "http"));
    let request = request_span(&spans, &trace).unwrap();
    assert_eq!(request["resource"]["service.name"], "pipeserve");
    assert!(named(&spans, "batch").iter().any(|b| links_to(b, request)));
}

#[tokio::test]
async fn tracing_off_sends_nothing() {
    let Some(receiver) = Receiver::start() else { return };
    let endpoint = format!("http://127.0.0.1:{}", receiver.grpc);
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    // No endpoint at all; and an endpoint switched off by the SDK's standard variable.
    let setups: [&[(&str, &str)]; 2] = [
        &[("OTEL_SERVICE_NAME", "pipeserve-test"), ("OTEL_BSP_SCHEDULE_DELAY", "100")],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    ];
    for env in setups {
        let server = Server::start_with_env(MODEL, &["--drain-delay", "0s"], env);
        let response = predict(&server, "I love it", Some(&traceparent)).await;
        assert_eq!(header(&response, "x-trace-id"), None);
        assert_eq!(header(&response, "traceparent"), None);
        let logs = stop(server);
        assert!(logs.iter().any(|l| l.contains("trace export off")), "{logs:#?}");
    }
    // Give a stray exporter every chance to show itself.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.lines(), Vec::<Value>::new(), "the receiver got something");
}
