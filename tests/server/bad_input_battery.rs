//! A battery of hand-made bad requests against the real binary: encodings, sizes, types, nesting,
//! unicode edge cases, duplicate keys, wrong content types, methods and routes. Each must come back
//! as the expected 4xx in the one JSON error shape, naming the problem, with nothing internal in it
//! (no path, panic text, backtrace or source location).

use crate::common;

use common::server::Server;
use reqwest::{Client, Method};
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    error_type: &'static str,
    /// Text the error message must contain (case-insensitive).
    names: &'static str,
}

fn case(
    name: &'static str,
    path: &'static str,
    ct: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
    error_type: &'static str,
    names: &'static str,
) -> Case {
    Case { name, method: Method::POST, path, content_type: ct, body: body.into(), status, error_type, names }
}

const J: Option<&str> = Some("application/json");

fn cases() -> Vec<Case> {
    let many: Vec<String> = (0..5000).map(|i| format!("input {i}")).collect();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let long_text = "word ".repeat(600);
    let over_limit = format!("{{\"inputs\": \"{}\"}}", "b".repeat(3 * 1024 * 1024));
    vec![
        // Encodings.
        case("raw invalid utf-8", "/", None, vec![0xff, 0xfe, 0xfd], 400, "bad_request", "UTF-8"),
        case("raw lone continuation byte", "/", None, vec![b'a', 0x80, b'b'], 400, "bad_request", "UTF-8"),
        case("raw overlong encoding", "/", None, vec![0xc0, 0xaf], 400, "bad_request", "UTF-8"),
        case("raw utf-16 with bom", "/", None, vec![0xff, 0xfe, b'h', 0, b'i', 0], 400, "bad_request", "UTF-8"),
        case("raw encoded surrogate", "/", None, vec![0xed, 0xa0, 0x80], 400, "bad_request", "UTF-8"),
        case(
            "json invalid utf-8",
            "/predict",
            J,
            [&b"{\"inputs\": \""[..], &[0xff, 0xfe], b"\"}"].concat(),
            400,
            "bad_request",
            "UTF-8",
        ),
        case(
            "json lone surrogate escape",
            "/predict",
            J,
            r#"{"inputs": "\ud800"}"#,
            400,
            "bad_request",
            "not valid JSON",
        ),
        case("json bad escape", "/predict", J, r#"{"inputs": "\x41"}"#, 400, "bad_request", "not valid JSON"),
        case(
            "json utf-8 bom",
            "/predict",
            J,
            [&[0xef, 0xbb, 0xbf][..], br#"{"inputs": "a"}"#].concat(),
            400,
            "bad_request",
            "not valid JSON",
        ),
        case(
            "json nul byte outside string",
            "/predict",
            J,
            b"{\"inputs\": \"a\"}\0".to_vec(),
            400,
            "bad_request",
            "not valid JSON",
        ),
        case(
            "json raw control char in string",
            "/predict",
            J,
            b"{\"inputs\": \"a\x01b\"}".to_vec(),
            400,
            "bad_request",
            "control character",
        ),
        // Syntax.
        case("empty json body", "/predict", J, "", 400, "bad_request", "empty"),
        case("truncated json", "/predict", J, r#"{"inputs": "a""#, 400, "bad_request", "not valid JSON"),
        case("trailing garbage", "/predict", J, r#"{"inputs": "a"} x"#, 400, "bad_request", "trailing"),
        case("single quotes", "/predict", J, "{'inputs': 'a'}", 400, "bad_request", "not valid JSON"),
        case("trailing comma", "/predict", J, r#"{"inputs": "a",}"#, 400, "bad_request", "not valid JSON"),
        case("comment", "/predict", J, "{\"inputs\": \"a\" /* c */}", 400, "bad_request", "not valid JSON"),
        case(
            "NaN literal",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"top_k": NaN}}"#,
            400,
            "bad_request",
            "not valid JSON",
        ),
        case("deep nesting", "/predict", J, deep.clone(), 422, "validation", "JSON object"),
        case("deep nesting inside", "/predict", J, format!("{{\"inputs\": {deep}}}"), 422, "validation", "inputs"),
        case("two json documents", "/predict", J, r#"{"inputs": "a"}{"inputs": "b"}"#, 400, "bad_request", "trailing"),
        // Types.
        case("json null", "/predict", J, "null", 422, "validation", "JSON object"),
        case("json array top level", "/predict", J, r#"["a"]"#, 422, "validation", "JSON object"),
        case("json string top level", "/predict", J, r#""a""#, 422, "validation", "JSON object"),
        case("json number top level", "/predict", J, "42", 422, "validation", "JSON object"),
        case("missing inputs", "/predict", J, "{}", 422, "validation", "missing field `inputs`"),
        case("inputs number", "/predict", J, r#"{"inputs": 42}"#, 422, "validation", "a string or a list of strings"),
        case("inputs null", "/predict", J, r#"{"inputs": null}"#, 422, "validation", "a string or a list of strings"),
        case("inputs bool", "/predict", J, r#"{"inputs": true}"#, 422, "validation", "a string or a list of strings"),
        case(
            "inputs object",
            "/predict",
            J,
            r#"{"inputs": {"text": "a"}}"#,
            422,
            "validation",
            "a string or a list of strings",
        ),
        case(
            "inputs list of three",
            "/predict",
            J,
            r#"{"inputs": [["a", "b", "c"]]}"#,
            422,
            "validation",
            "expected a string",
        ),
        case(
            "inputs list with number",
            "/predict",
            J,
            r#"{"inputs": ["a", 1]}"#,
            422,
            "validation",
            "expected a string",
        ),
        case(
            "inputs list with null",
            "/predict",
            J,
            r#"{"inputs": ["a", null]}"#,
            422,
            "validation",
            "expected a string",
        ),
        case(
            "parameters not an object",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": "fast"}"#,
            422,
            "validation",
            "parameters",
        ),
        case(
            "top_k negative",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"top_k": -1}}"#,
            422,
            "validation",
            "top_k",
        ),
        case(
            "top_k string",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"top_k": "3"}}"#,
            422,
            "validation",
            "top_k",
        ),
        case(
            "top_k huge",
            "/predict",
            J,
            // (top_k is not a parameter of this embedding model; a number where inputs go is read.)
            r#"{"inputs": 1e400}"#,
            400,
            "bad_request",
            "number out of range",
        ),
        case(
            "pooling unknown",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"pooling": "median"}}"#,
            422,
            "validation",
            "median",
        ),
        case(
            "normalize string",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"normalize": "yes"}}"#,
            422,
            "validation",
            "normalize",
        ),
        case(
            "truncate number",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"truncate": 1}}"#,
            422,
            "validation",
            "truncate",
        ),
        case(
            "unknown parameter",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"temperature": 0.7}}"#,
            422,
            "validation",
            "temperature",
        ),
        case(
            "parameter of another task",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"aggregation_strategy": "simple"}}"#,
            422,
            "validation",
            "aggregation_strategy",
        ),
        case("unknown top-level field", "/predict", J, r#"{"inputs": "a", "extra": 1}"#, 422, "validation", "extra"),
        case(
            "duplicate inputs key",
            "/predict",
            J,
            r#"{"inputs": "a", "inputs": "b"}"#,
            422,
            "validation",
            "duplicate field `inputs`",
        ),
        case(
            "duplicate parameter key",
            "/predict",
            J,
            r#"{"inputs": "a", "parameters": {"pooling": "mean", "pooling": "cls"}}"#,
            422,
            "validation",
            "duplicate field",
        ),
        case(
            "embed normalize string",
            "/embed",
            J,
            r#"{"inputs": "a", "normalize": "no"}"#,
            422,
            "validation",
            "invalid type",
        ),
        case("openai wrong field name", "/v1/embeddings", J, r#"{"inputs": "a"}"#, 422, "validation", "inputs"),
        case(
            "openai encoding unknown",
            "/v1/embeddings",
            J,
            r#"{"input": "a", "encoding_format": "int8"}"#,
            422,
            "validation",
            "int8",
        ),
        case(
            "openai dimensions above the width",
            "/v1/embeddings",
            J,
            r#"{"input": "a", "dimensions": 1000}"#,
            422,
            "validation",
            "dimensions",
        ),
        case(
            "openai dimensions zero",
            "/v1/embeddings",
            J,
            r#"{"input": "a", "dimensions": 0}"#,
            422,
            "validation",
            "dimensions",
        ),
        case(
            "openai negative token id",
            "/v1/embeddings",
            J,
            r#"{"input": [101, -1]}"#,
            422,
            "validation",
            "expected a string",
        ),
        case(
            "openai token id outside the vocabulary",
            "/v1/embeddings",
            J,
            r#"{"input": [[101, 999999, 102]]}"#,
            422,
            "validation",
            "vocabulary",
        ),
        case("openai empty token ids", "/v1/embeddings", J, r#"{"input": [[]]}"#, 422, "validation", "empty"),
        // Content and sizes.
        case("empty raw body", "/", None, "", 422, "validation", "empty"),
        case("whitespace only", "/", None, " \t\n ", 422, "validation", "empty"),
        case("empty string input", "/predict", J, r#"{"inputs": ""}"#, 422, "validation", "empty"),
        case("empty list", "/predict", J, r#"{"inputs": []}"#, 422, "validation", "empty"),
        case("empty string in a list", "/predict", J, r#"{"inputs": ["a", ""]}"#, 422, "validation", "inputs[1]"),
        case(
            "zero-width only",
            "/predict",
            J,
            json!({"inputs": "\u{200b}\u{200b}"}).to_string(),
            422,
            "validation",
            "empty",
        ),
        case(
            "control characters only",
            "/predict",
            J,
            json!({"inputs": "\u{0007}\u{001b}"}).to_string(),
            422,
            "validation",
            "empty",
        ),
        case(
            "too long without truncation",
            "/predict",
            J,
            json!({"inputs": long_text}).to_string(),
            422,
            "validation",
            "limit of",
        ),
        case(
            "one too long in a list",
            "/predict",
            J,
            json!({"inputs": ["ok", long_text]}).to_string(),
            422,
            "validation",
            "inputs[1]",
        ),
        case("thousands of inputs", "/predict", J, json!({"inputs": many}).to_string(), 413, "too_many_inputs", "5000"),
        case(
            "thousands of inputs on /embed",
            "/embed",
            J,
            json!({"inputs": many}).to_string(),
            413,
            "too_many_inputs",
            "limit is",
        ),
        case("body over the limit", "/predict", J, over_limit, 413, "payload_too_large", "limit"),
        case("1 MB of words (raw)", "/", None, "ab ".repeat(350_000), 422, "validation", "limit of"),
        case(
            "1 MB of words (json)",
            "/predict",
            J,
            json!({"inputs": "ab ".repeat(350_000)}).to_string(),
            422,
            "validation",
            "limit of",
        ),
        // Content types.
        case(
            "text/plain on json route",
            "/predict",
            Some("text/plain"),
            r#"{"inputs": "a"}"#,
            415,
            "unsupported_media_type",
            "application/json",
        ),
        case(
            "form on json route",
            "/predict",
            Some("application/x-www-form-urlencoded"),
            "inputs=a",
            415,
            "unsupported_media_type",
            "application/json",
        ),
        case(
            "multipart on json route",
            "/embed",
            Some("multipart/form-data; boundary=x"),
            "--x--",
            415,
            "unsupported_media_type",
            "application/json",
        ),
        case(
            "xml on json route",
            "/v1/embeddings",
            Some("application/xml"),
            "<input>a</input>",
            415,
            "unsupported_media_type",
            "application/json",
        ),
        case(
            "jsonish but not json",
            "/predict",
            Some("application/jsonp"),
            r#"{"inputs": "a"}"#,
            415,
            "unsupported_media_type",
            "jsonp",
        ),
        // Methods and routes.
        Case {
            name: "GET on an inference route",
            method: Method::GET,
            path: "/predict",
            content_type: None,
            body: vec![],
            status: 405,
            error_type: "method_not_allowed",
            names: "method",
        },
        Case {
            name: "PUT on an inference route",
            method: Method::PUT,
            path: "/embed",
            content_type: J,
            body: br#"{"inputs": "a"}"#.to_vec(),
            status: 405,
            error_type: "method_not_allowed",
            names: "method",
        },
        Case {
            name: "POST on health",
            method: Method::POST,
            path: "/health/ready",
            content_type: None,
            body: vec![],
            status: 405,
            error_type: "method_not_allowed",
            names: "method",
        },
        case("unknown route", "/v9/predict", J, r#"{"inputs": "a"}"#, 404, "not_found", "not found"),
        case("path traversal", "/../../etc/passwd", None, "", 404, "not_found", "not found"),
        case("encoded traversal", "/%2e%2e/%2e%2e/etc/passwd", None, "", 404, "not_found", "not found"),
    ]
}

/// Edge cases that are valid input: served (200), never a 5xx or a panic. A 1 MB single word is
/// one `[UNK]` token to WordPiece, so it is a short input, not a long one.
fn accepted() -> Vec<(&'static str, String)> {
    vec![
        ("a 1 MB single word", "a".repeat(1024 * 1024)),
        ("emoji with ZWJ and skin tones", "👩🏽‍💻 👨‍👩‍👧‍👦 🏳️‍🌈".into()),
        ("combining marks", "e\u{301}\u{302}\u{303}\u{304} Z\u{351}\u{35b}\u{346}".into()),
        ("right-to-left with overrides", "\u{202e}abc\u{202c} مرحبا שלום".into()),
        ("CJK and fullwidth", "日本語のテキスト ＡＢＣ１２３".into()),
        ("private use and noncharacters", "\u{e000}\u{fdd0}\u{fffe}\u{10ffff} ok".into()),
        ("nul and control characters among words", "a\u{0}b\u{7}c d".into()),
        ("only punctuation", "?!…—".into()),
        ("mask token in an embedding model", "[MASK] [CLS] [SEP] [PAD]".into()),
        ("mixed newlines and tabs", "line one\r\nline two\tend".into()),
    ]
}

#[tokio::test]
async fn unicode_edge_cases_that_are_valid_are_served() {
    let server = Server::start("all-MiniLM-L6-v2", &["--max-input-tokens", "128"]);
    let client = Client::new();
    for (name, text) in accepted() {
        for (path, body) in [("/predict", json!({"inputs": text})), ("/embed", json!({"inputs": [text.clone(), "x"]}))]
        {
            let r = client.post(server.url(path)).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200, "{name} on {path}: {}", r.text().await.unwrap());
        }
        let r = client.post(server.url("/")).body(text.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name} raw");
    }
}

#[tokio::test]
async fn every_bad_request_is_a_clear_4xx_with_nothing_internal() {
    let server = Server::start("all-MiniLM-L6-v2", &["--max-input-tokens", "128"]);
    let model_dir = common::model_dir("all-MiniLM-L6-v2").to_string_lossy().into_owned();
    let client = Client::new();
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let mut r = client.request(c.method.clone(), server.url(c.path)).body(c.body.clone());
        if let Some(ct) = c.content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let mut problems = Vec::new();
        if status != c.status {
            problems.push(format!("status {status}, expected {}", c.status));
        }
        // The OpenAI routes answer in OpenAI's shape; read it as ours to check the same things.
        let parsed = serde_json::from_str::<Value>(&text).map(|v| {
            if !c.path.starts_with("/v1/") {
                return v;
            }
            let inner: Vec<_> = v["error"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
            if inner != ["code", "message", "param", "type"] {
                return json!({"shape": format!("not OpenAI's error shape: {v}")});
            }
            json!({"error": v["error"]["message"], "error_type": v["error"]["code"], "request_id": "-"})
        });
        match parsed {
            Ok(v) => {
                let keys: Vec<_> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                if keys != ["error", "error_type", "request_id"] {
                    problems.push(format!("keys {keys:?}"));
                }
                if v["error_type"] != c.error_type {
                    problems.push(format!("error_type {}, expected {}", v["error_type"], c.error_type));
                }
                let message = v["error"].as_str().unwrap_or_default().to_lowercase();
                if !message.contains(&c.names.to_lowercase()) {
                    problems.push(format!("message does not name {:?}", c.names));
                }
                if message.len() > 1000 {
                    problems.push(format!("message of {} bytes", message.len()));
                }
            }
            Err(_) => problems.push("body is not JSON".into()),
        }
        for leak in [
            "panicked",
            "backtrace",
            ".rs:",
            "src/",
            "/root",
            "/work",
            "/tmp",
            "/home",
            "called `",
            "unwrap",
            &model_dir,
        ] {
            if text.contains(leak) {
                problems.push(format!("leaks {leak:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} — {}",
                c.name,
                problems.join("; "),
                text.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    // Nothing above was a 5xx or a panic, and the server still serves.
    assert_eq!(server.metric("pipeserve_worker_panics_total").await, 0.0);
    let r = client.post(server.url("/embed")).json(&json!({"inputs": "still fine"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    eprintln!("{} bad-input cases passed", cases.len());
}
