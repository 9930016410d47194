//! `/docs`: the API explorer page and its compiled-in assets, on the real binary.
//! (ci/deploy-checks.sh renders the page in a headless Chromium.)

use crate::common;

use common::server::Server;
use reqwest::Client;
use serde_json::Value;

/// Every `src="..."` and `href="..."` of an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let end = rest.find('"').expect("a closed attribute");
            found.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    found
}

/// The page is HTML that loads only this server's own files, each with its content type, caching
/// and a CSP that allows nothing from elsewhere; the initializer points at `/openapi.json`.
#[tokio::test]
async fn docs_page_loads_only_local_assets() {
    let server = Server::start("all-MiniLM-L6-v2", &[]);
    let client = Client::new();
    let r = client.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains("http"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style: {html}");
    let refs = references(&html);
    assert_eq!(refs.len(), 4, "{refs:?}");
    // The empty icon keeps the browser from asking for /favicon.ico.
    assert!(refs.contains(&"data:,".to_string()), "{refs:?}");
    for path in refs.iter().filter(|r| *r != "data:,") {
        assert!(path.starts_with('/') && !path.starts_with("//"), "{path} is not on this server");
        let r = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=86400", "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
        let body = r.text().await.unwrap();
        if path.ends_with(".js") {
            assert_eq!(content_type, "text/javascript; charset=utf-8", "{path}");
        } else {
            assert_eq!(content_type, "text/css; charset=utf-8", "{path}");
            assert!(body.contains(".swagger-ui"), "{path} is Swagger UI's stylesheet");
        }
        if path.ends_with("swagger-ui-bundle.js") {
            assert!(body.contains("SwaggerUIBundle") && body.len() > 1_000_000, "{path} is the full bundle");
        }
        if path.ends_with("docs.js") {
            assert!(body.contains("url: \"/openapi.json\""), "{body}");
            assert!(body.contains("validatorUrl: null"), "{body}");
        }
    }
    // The licence ships with the bundle.
    let licence = client.get(server.url("/docs/swagger-ui-LICENSE")).send().await.unwrap();
    assert_eq!(licence.status(), 200);
    assert!(licence.text().await.unwrap().contains("Apache License"));
    // What the page points at is there.
    assert_eq!(client.get(server.url("/openapi.json")).send().await.unwrap().status(), 200);
    // A path under /docs that is not an asset is the usual 404.
    assert_eq!(client.get(server.url("/docs/missing.js")).send().await.unwrap().status(), 404);
}

/// With `--api-key`, the page and the document load without the key (operational routes), the
/// document tells the page that the inference routes take a bearer key, and a call from the page
/// works only with it.
#[tokio::test]
async fn docs_page_with_api_key() {
    let server = Server::start("all-MiniLM-L6-v2", &["--api-key", "docs-key"]);
    let client = Client::new();
    for path in ["/docs", "/docs/swagger-ui-bundle.js", "/openapi.json"] {
        assert_eq!(client.get(server.url(path)).send().await.unwrap().status(), 200, "{path} without a key");
    }
    let document: Value = client.get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let scheme = &document["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    for (path, method) in [("/embed", "post"), ("/v2/models/{name}/infer", "post"), ("/v2/models/{name}", "get")] {
        let security = &document["paths"][path][method]["security"];
        assert_eq!(security, &serde_json::json!([{}, {"api_key": []}]), "{method} {path}");
    }
    for (path, method) in [("/health/ready", "get"), ("/v2/health/ready", "get")] {
        assert!(document["paths"][path][method].get("security").is_none(), "{method} {path} needs no key");
    }
    // What "Try it out" sends for POST /embed: without the key 401, with "Authorize" 200.
    let body = serde_json::json!({"inputs": "hello"});
    let r = client.post(server.url("/embed")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client.post(server.url("/embed")).bearer_auth("docs-key").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// The document the page shows covers KServe's v2 REST routes with their request and response
/// bodies, so they can be tried from `/docs`.
#[tokio::test]
async fn docs_document_covers_kserve_v2() {
    let server = Server::start("all-MiniLM-L6-v2", &[]);
    let document: Value = Client::new().get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let resolve = |node: &Value| -> Value {
        match node["$ref"].as_str() {
            Some(r) => document["components"]["schemas"][r.trim_start_matches("#/components/schemas/")].clone(),
            None => node.clone(),
        }
    };
    for path in ["/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"] {
        let operation = &document["paths"][path]["post"];
        assert_eq!(operation["tags"][0], "KServe v2", "{path}");
        let request = resolve(&operation["requestBody"]["content"]["application/json"]["schema"]);
        assert!(request["properties"].get("inputs").is_some(), "{path} request: {request}");
        let response = resolve(&operation["responses"]["200"]["content"]["application/json"]["schema"]);
        assert!(response["properties"].get("outputs").is_some(), "{path} response: {response}");
        let error = resolve(&operation["responses"]["422"]["content"]["application/json"]["schema"]);
        assert!(error["properties"].get("error").is_some(), "{path} v2 error body: {error}");
    }
    for path in ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready"] {
        assert!(document["paths"][path]["get"]["responses"].get("200").is_some(), "{path}");
    }
}
