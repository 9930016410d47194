//! Security and slow clients on the real binary: the optional API key guards the inference routes
//! only; slow headers close the connection and slow bodies get 408, while others are served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::server::Server;
use reqwest::Client;
use serde_json::{json, Value};

fn addr(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn api_key_guards_inference_routes_only() {
    let server = Server::start("all-MiniLM-L6-v2", &["--api-key", "s3cret-key"]);
    let client = Client::new();
    let body = json!({"inputs": "hello"});
    for path in ["/embed", "/predict", "/v1/embeddings"] {
        let body = if path == "/v1/embeddings" { json!({"input": "hello"}) } else { body.clone() };
        // No key, a wrong key, a wrong scheme, a prefix of the key: 401 in the standard shape.
        for auth in [None, Some("Bearer wrong"), Some("Basic s3cret-key"), Some("Bearer s3cret"), Some("Bearer s3cret-key-and-more")] {
            let mut r = client.post(server.url(path)).json(&body);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "{path} {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error_type"], "unauthorized", "{v}");
            assert!(v["error"].as_str().unwrap().contains("API key"), "{v}");
            assert!(v["request_id"].is_string(), "{v}");
            assert!(!v.to_string().contains("s3cret"), "the key never echoes back");
        }
        let r = client.post(server.url(path)).bearer_auth("s3cret-key").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} with the key");
        let r = client.post(server.url(path)).header("x-api-key", "s3cret-key").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} with x-api-key");
    }
    let r = client.post(server.url("/")).body("raw").send().await.unwrap();
    assert_eq!(r.status(), 401);
    for path in ["/health/live", "/health/ready", "/metrics", "/info"] {
        assert_eq!(client.get(server.url(path)).send().await.unwrap().status(), 200, "{path} stays open");
    }
    assert!(server.logs().iter().all(|l| !l.contains("s3cret-key")), "the key never reaches the log");
}

/// Reads from a raw connection until EOF or `limit`; returns what arrived and whether it closed.
fn read_until_close(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

#[tokio::test]
async fn slow_clients_cannot_tie_the_server_up() {
    let server = Server::start(
        "all-MiniLM-L6-v2",
        &["--header-read-timeout", "500ms", "--body-read-timeout", "500ms", "--max-queue", "8"],
    );
    let address = addr(&server);
    // Many slowloris connections: half a header each, then silence; more than the queue holds.
    let mut slow_headers: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut s = TcpStream::connect(&address).unwrap();
            s.write_all(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: appl").unwrap();
            s
        })
        .collect();
    // Slow bodies: full headers, a tenth of the promised body.
    let mut slow_bodies: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(&address).unwrap();
            s.write_all(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inputs\":").unwrap();
            s
        })
        .collect();
    // Meanwhile a normal client is served at once.
    let client = Client::new();
    let started = Instant::now();
    let r = client.post(server.url("/embed")).json(&json!({"inputs": "hello"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(400), "served while slow clients wait: {:?}", started.elapsed());

    let slow = tokio::task::spawn_blocking(move || {
        let headers: Vec<_> = slow_headers.iter_mut().map(|s| read_until_close(s, Duration::from_secs(3))).collect();
        let bodies: Vec<_> = slow_bodies.iter_mut().map(|s| read_until_close(s, Duration::from_secs(3))).collect();
        (headers, bodies)
    });
    let (headers, bodies) = slow.await.unwrap();
    for (text, closed) in &headers {
        assert!(closed, "a connection with unfinished headers stays open: {text:?}");
    }
    for (text, closed) in &bodies {
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("\"error_type\":\"body_timeout\"") && text.contains("did not arrive within 500ms"), "{text}");
        assert!(closed, "the connection closes after the 408: {text}");
    }
    // The slow bodies held no queue slot: the queue is empty and the server still serves.
    assert_eq!(server.metric("pipeserve_queue_depth").await, 0.0);
    let r = client.post(server.url("/embed")).json(&json!({"inputs": "still here"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
