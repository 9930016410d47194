//! Load benchmark: drives the real `pipeserve` binary over HTTP (loopback, bounded in time) and
//! reports throughput and p50/p99 latency at concurrency 1, 8, 32, 128 for short (~10 tokens) and
//! long (~128 tokens) inputs, with batching on and off.
//!
//! `cargo bench --bench load` (after `python3 scripts/fetch_models.py`). Environment:
//! `BENCH_SECONDS` per cell (default 5), `BENCH_CONCURRENCY` (default "1,8,32,128"),
//! `BENCH_MODES` (default "batching,no-batching"), `BENCH_MODEL`, `BENCH_ARGS` (extra server flags),
//! `BENCH_JSON` (write results there as JSON lines).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Server(Child, String);

impl Server {
    fn start(model: &str, args: &[String]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pipeserve"))
            .args(["--model", model, "--host", "127.0.0.1", "--port", "0", "--json-logs"])
            .args(["--max-queue", "100000"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pipeserve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let address = loop {
            let line = lines.next().expect("server exited").unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "listening" {
                break v["address"].as_str().unwrap().to_string();
            }
        };
        // Keep draining its logs so the pipe never fills.
        std::thread::spawn(move || for _ in lines {});
        Self(child, format!("http://{address}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cell {
    requests: usize,
    errors: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
}

async fn run_cell(base: &str, text: &str, concurrency: usize, seconds: f64) -> Cell {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let url = format!("{base}/embed");
    let body = json!({"inputs": text}).to_string();
    // Warm-up: a second of the same load.
    let run = |duration: Duration| {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                tokio::spawn(async move {
                    let end = Instant::now() + duration;
                    let (mut lat, mut errors) = (Vec::new(), 0usize);
                    while Instant::now() < end {
                        let t = Instant::now();
                        let r = client.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
                        match r {
                            Ok(r) if r.status().is_success() => {
                                let _ = r.bytes().await;
                                lat.push(t.elapsed());
                            }
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect::<Vec<_>>();
        async move {
            let mut all = Vec::new();
            let mut errors = 0;
            for t in tasks {
                let (l, e) = t.await.unwrap();
                all.extend(l);
                errors += e;
            }
            (all, errors)
        }
    };
    run(Duration::from_secs(1)).await;
    let started = Instant::now();
    let (mut lat, errors) = run(Duration::from_secs_f64(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default();
    Cell { requests: lat.len(), errors, seconds: elapsed, p50: pct(0.50), p99: pct(0.99) }
}

fn main() {
    let model = std::env::var("BENCH_MODEL").unwrap_or_else(|_| "models/all-MiniLM-L6-v2".into());
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let levels: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,8,32,128".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "batching,no-batching".into());
    let extra: Vec<String> = std::env::var("BENCH_ARGS").unwrap_or_default().split_whitespace().map(String::from).collect();
    let mut json_out = std::env::var("BENCH_JSON").ok().map(|p| std::fs::File::create(p).unwrap());
    // ~10 and ~128 tokens with [CLS]/[SEP] for the MiniLM tokenizer.
    let short = "The quick brown fox jumps over the dog.".to_string();
    let long = "Serving encoder models well means batching requests dynamically while keeping latency low. "
        .repeat(9)
        .split_whitespace()
        .take(110)
        .collect::<Vec<_>>()
        .join(" ");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("load benchmark: {model}, {seconds} s per cell, loopback\n");
    println!("| mode | input | concurrency | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for mode in modes.split(',') {
        let mut args = extra.clone();
        if mode == "no-batching" {
            args.extend(["--max-batch-size".to_string(), "1".to_string()]);
        }
        let server = Server::start(&model, &args);
        for (kind, text) in [("short", &short), ("long", &long)] {
            for &c in &levels {
                let cell = runtime.block_on(run_cell(&server.1, text, c, seconds));
                let rps = cell.requests as f64 / cell.seconds;
                println!(
                    "| {mode} | {kind} | {c} | {rps:.1} | {:.1} | {:.1} | {} |",
                    cell.p50.as_secs_f64() * 1e3,
                    cell.p99.as_secs_f64() * 1e3,
                    cell.errors
                );
                if let Some(f) = json_out.as_mut() {
                    let line = json!({"mode": mode, "input": kind, "concurrency": c, "rps": rps,
                        "p50_ms": cell.p50.as_secs_f64() * 1e3, "p99_ms": cell.p99.as_secs_f64() * 1e3, "errors": cell.errors});
                    writeln!(f, "{line}").unwrap();
                }
            }
        }
    }
}
