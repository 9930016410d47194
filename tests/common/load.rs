//! Closed-loop load for the drain tests: clients posting to `/embed` back to back until stopped.
//! An accepted request must come back 200; any other answer, or a transport error before the
//! listener is expected to have closed, counts as lost. Transport errors after that moment are
//! connections the server refused, never accepted.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::json;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Counts {
    stop: AtomicBool,
    ok: AtomicUsize,
    lost: AtomicUsize,
    refused: AtomicUsize,
    closed_at: Mutex<Option<Instant>>,
}

pub struct ClosedLoop {
    counts: Arc<Counts>,
    workers: Vec<JoinHandle<()>>,
}

/// What a closed loop saw, once stopped.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    pub ok: usize,
    pub lost: usize,
    pub refused: usize,
}

impl ClosedLoop {
    /// Starts `clients` loops on `url`, each sending inputs of 1 to 16 words of varying length;
    /// `label` goes into the texts and the messages.
    pub fn start(client: &Client, url: String, clients: usize, label: &str) -> Self {
        let counts = Arc::new(Counts::default());
        let workers = (0..clients)
            .map(|w| {
                let (client, url, counts, label) = (client.clone(), url.clone(), counts.clone(), label.to_owned());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !counts.stop.load(Ordering::Relaxed) && n < 10_000 {
                        n += 1;
                        let text = format!("{label} {w}-{n}: {}", "words ".repeat(1 + n % 16));
                        match client.post(&url).json(&json!({"inputs": text})).send().await {
                            Ok(r) if r.status() == 200 => {
                                counts.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                eprintln!("{label}: accepted request answered {}", r.status());
                                counts.lost.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                if counts.closed_at.lock().unwrap().is_none_or(|t| Instant::now() < t) {
                                    eprintln!("{label}: transport error before the listener closed: {e}");
                                    counts.lost.fetch_add(1, Ordering::Relaxed);
                                }
                                counts.refused.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Self { counts, workers }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> usize {
        self.counts.ok.load(Ordering::Relaxed)
    }

    /// From `after` on, a transport error means the listener had closed, not a lost request.
    pub fn listener_closes_in(&self, after: Duration) {
        *self.counts.closed_at.lock().unwrap() = Some(Instant::now() + after);
    }

    /// Stops the loops and waits for their requests in flight.
    pub async fn stop(self) -> Tally {
        self.counts.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        let c = &self.counts;
        Tally {
            ok: c.ok.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }
}
