//! Heavy clients cannot stall a small request (issue 15's adversarial suite, docs/reliability.md):
//! 4 clients (64 with `RELIABILITY_FULL=1`) loop 32 × ~500-token inputs; a small request gets 200
//! within its deadline or 503 at once. It times admission's promise (the wait it predicts at the
//! measured rate), so it runs alone, like every test in this crate. The short form runs on two
//! shared vCPUs, where the host's own noise moves the model's rate up to 1.5× within seconds
//! (docs/benchmarks.md, Zen 1): there one small request in a run may miss the promise, and its
//! 504 must still come at its deadline; the full form allows none.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::json;

use super::{full, SERIAL};
use crate::common::server::{memory_kib, Server, CHART_MEMORY_LIMIT_KIB};
use crate::common::words;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_clients_cannot_stall_a_small_request() {
    let _serial = SERIAL.lock().await;
    let deadline = Duration::from_secs(2);
    // The default (length) batch policy: admission counts the one batch that may overtake an input
    // (queue::MAX_SKIPS), so the bound holds under it as under fifo. Batches of 512 tokens: with
    // the default 2,048 one batch alone takes about the whole 2 s deadline on 2 busy cores, and no
    // order could serve a small request in time.
    let server = Server::start("all-MiniLM-L6-v2", &["--request-timeout", "2s", "--max-batch-tokens", "512"]);
    let heavy_clients = if full() { 64 } else { 4 };
    let seconds = if full() { 30.0 } else { 8.0 };
    let stop = Instant::now() + Duration::from_secs_f64(seconds);
    let heavy_body = json!({"inputs": vec![words(500); 32], "truncate": true});
    let heavy: Vec<_> = (0..heavy_clients)
        .map(|_| {
            let (url, body) = (server.url("/embed"), heavy_body.clone());
            tokio::spawn(async move {
                let client = Client::new();
                let mut statuses = Vec::new();
                while Instant::now() < stop {
                    match client.post(&url).json(&body).send().await {
                        Ok(r) => statuses.push(r.status().as_u16()),
                        Err(_) => statuses.push(0),
                    }
                }
                statuses
            })
        })
        .collect();
    // Let the heavy load build up, then probe with small requests.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = Client::new();
    let mut outcomes = Vec::new();
    while Instant::now() + deadline < stop {
        let started = Instant::now();
        let r = client.post(server.url("/embed")).json(&json!({"inputs": "a small request"})).send().await.unwrap();
        outcomes.push((r.status().as_u16(), started.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut heavy_statuses = Vec::new();
    for h in heavy {
        heavy_statuses.extend(h.await.unwrap());
    }
    eprintln!("small requests (status, latency): {outcomes:?}");
    let count = |s: u16| heavy_statuses.iter().filter(|&&x| x == s).count();
    eprintln!("heavy statuses: 200 × {}, 503 × {}, 504 × {}", count(200), count(503), count(504));
    let mut missed = 0;
    for (status, latency) in &outcomes {
        match status {
            200 => assert!(*latency <= deadline, "a small request took {latency:?}"),
            503 => assert!(*latency <= Duration::from_millis(50), "a 503 took {latency:?}"),
            // Admitted, then late: the request timeout still ends it at its deadline.
            504 => {
                assert!(*latency <= deadline + Duration::from_millis(200), "a 504 came after {latency:?}");
                missed += 1;
            }
            other => panic!("a small request got {other} after {latency:?}"),
        }
    }
    let allowed = if full() { 0 } else { 1 };
    eprintln!("small requests admitted and then late (504): {missed} of {}", outcomes.len());
    assert!(missed <= allowed, "{missed} small requests admitted and then late (504), at most {allowed}");
    assert!(!outcomes.is_empty());
    // Fairness: the queue interleaves requests, so a small one waits for about one input of each
    // heavy request rather than their backlog, and admission charges it only that. How many get in
    // depends on the machine's load (the short form only reports it).
    let served = outcomes.iter().filter(|(s, _)| *s == 200).count();
    eprintln!("small requests served: {served} of {}", outcomes.len());
    if full() {
        assert!(served > 0, "no small request was served while heavy clients ran");
    }
    // A heavy request admitted to an empty queue may still outlast its own 2 s deadline (504):
    // retrying cannot make its own work faster, and it costs the small ones nothing.
    assert!(heavy_statuses.iter().all(|s| [200, 503, 504].contains(s)), "heavy clients: {heavy_statuses:?}");
    assert!(memory_kib(server.pid(), "VmHWM") < CHART_MEMORY_LIMIT_KIB);
}
