//! Graceful shutdown under load, as Kubernetes does it: SIGTERM → not ready at once, keep serving
//! through the drain delay, stop accepting, finish every accepted request, exit 0.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::Server;
use reqwest::Client;
use serde_json::json;

#[tokio::test]
async fn sigterm_under_load_loses_no_accepted_request() {
    let mut server = Server::start(
        "all-MiniLM-L6-v2",
        &["--drain-delay", "1s", "--shutdown-timeout", "20s", "--max-wait", "5ms"],
    );
    let client = Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed_status = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let closed_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();

    let workers: Vec<_> = (0..16)
        .map(|i| {
            let (client, url) = (client.clone(), server.url("/embed"));
            let (stop, ok, failed_status, refused, closed_at) =
                (stop.clone(), ok.clone(), failed_status.clone(), refused.clone(), closed_at.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 10_000 {
                    n += 1;
                    let text = format!("request {i}-{n}: {}", "many words here ".repeat(1 + n % 8));
                    match client.post(&url).json(&json!({"inputs": text})).send().await {
                        Ok(r) if r.status() == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            eprintln!("accepted request answered {}", r.status());
                            failed_status.fetch_add(1, Ordering::Relaxed);
                        }
                        // Connection refused/closed after the listener shut: never accepted. Before
                        // it shut, a transport error would be a lost request.
                        Err(e) => {
                            if closed_at.lock().unwrap().is_none_or(|t| Instant::now() < t) {
                                eprintln!("transport error before the listener closed: {e}");
                                failed_status.fetch_add(1, Ordering::Relaxed);
                            }
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 0, "load is flowing");
    // The listener closes one drain delay after SIGTERM (minus a margin for scheduling).
    *closed_at.lock().unwrap() = Some(Instant::now() + Duration::from_millis(950));
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client.get(server.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready at once after SIGTERM");
    let during_drain = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(ok.load(Ordering::Relaxed) > during_drain, "still serving during the drain delay");

    let status = server.wait_exit(Duration::from_secs(25)).expect("exits within the grace period");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(failed_status.load(Ordering::Relaxed), 0, "an accepted request was lost or got a non-200");
    assert!(server.wait_log("shut down cleanly", Duration::from_secs(2)), "no clean shutdown in the log");
    eprintln!("ok={} refused_after_close={}", ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
}
