//! Security and slow clients on the real binary: the optional API key guards the inference routes
//! only; slow headers close the connection and slow bodies get 408, while others are served;
//! an oversized body gets its 413, not a reset connection.

use crate::common;

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
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic s3cret-key"),
            Some("Bearer s3cret"),
            Some("Bearer s3cret-key-and-more"),
        ] {
            let mut r = client.post(server.url(path)).json(&body);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "{path} {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let v: Value = r.json().await.unwrap();
            if path.starts_with("/v1/") {
                // OpenAI's shape on its routes.
                assert_eq!(v["error"]["type"], "authentication_error", "{v}");
                assert_eq!(v["error"]["code"], "unauthorized", "{v}");
                assert!(v["error"]["message"].as_str().unwrap().contains("API key"), "{v}");
            } else {
                assert_eq!(v["error_type"], "unauthorized", "{v}");
                assert!(v["error"].as_str().unwrap().contains("API key"), "{v}");
                assert!(v["request_id"].is_string(), "{v}");
            }
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
        assert!(
            text.contains("\"error_type\":\"body_timeout\"") && text.contains("did not arrive within 500ms"),
            "{text}"
        );
        assert!(closed, "the connection closes after the 408: {text}");
    }
    // The slow bodies held no queue slot: the queue is empty and the server still serves.
    assert_eq!(server.metric("pipeserve_queue_depth").await, 0.0);
    let r = client.post(server.url("/embed")).json(&json!({"inputs": "still here"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Reads one response off a kept-alive connection: status line and headers, then as many body
/// bytes as its `content-length` says.
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).expect("a response");
        assert!(n > 0, "closed before a response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("a content-length");
    while got.len() < head_end + length {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed inside the body");
        got.extend_from_slice(&buf[..n]);
    }
    (status, String::from_utf8_lossy(&got[head_end..head_end + length]).into_owned())
}

/// Answering 413 while a client is still writing, and closing with its body unread, makes the
/// kernel reset the connection: the client sees a broken pipe, not the 413. The server reads an
/// oversized body to its end first, so the whole body goes out, the 413 comes back, and the
/// connection carries the next request.
#[tokio::test]
async fn an_oversized_body_gets_its_413_not_a_reset() {
    let server = Server::start("all-MiniLM-L6-v2", &["--body-limit", "1048576"]);
    let address = addr(&server);
    // 16 MiB: more than the socket buffers on both ends hold, so an early close cannot hide.
    let big = vec![b'a'; 16 << 20];
    let outcome = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&address).unwrap();
        // Declared by content-length.
        s.write_all(format!("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", big.len()).as_bytes()).unwrap();
        s.write_all(&big).expect("the whole body goes out");
        let declared = read_response(&mut s);
        // Chunked, so the size shows only while reading; on the same connection.
        s.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        for chunk in big.chunks(1 << 20).take(4) {
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).unwrap();
            s.write_all(chunk).expect("the whole body goes out");
            s.write_all(b"\r\n").unwrap();
        }
        s.write_all(b"0\r\n\r\n").unwrap();
        let chunked = read_response(&mut s);
        // And the connection is still good for a request that fits.
        let ok = br#"{"inputs": "after the big ones"}"#;
        s.write_all(format!("POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", ok.len()).as_bytes()).unwrap();
        s.write_all(ok).unwrap();
        let after = read_response(&mut s);
        // A client that waits for `100 Continue` is told 413 at once and never sends the body.
        let mut s = TcpStream::connect(&address).unwrap();
        s.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16777216\r\nExpect: 100-continue\r\n\r\n").unwrap();
        let waiting = read_until_close(&mut s, Duration::from_secs(5));
        (declared, chunked, after, waiting)
    })
    .await
    .unwrap();
    let (declared, chunked, after, (waiting, closed)) = outcome;
    for (how, (status, body)) in [("content-length", declared), ("chunked", chunked)] {
        assert_eq!(status, 413, "{how}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error_type"], "payload_too_large", "{how}: {v}");
        assert!(v["error"].as_str().unwrap().contains("limit of 1048576 bytes"), "{how}: {v}");
    }
    assert_eq!(after.0, 200, "{}", after.1);
    assert!(waiting.starts_with("HTTP/1.1 413"), "{waiting}");
    assert!(!waiting.contains("100 Continue"), "{waiting}");
    assert!(closed, "the connection closes after a 413 whose body never came");
}
