//! Overload, memory soak and drain-under-load on the real binary, loopback only, every loop
//! bounded in count and time. The default is the short CI form; `RELIABILITY_FULL=1` runs the full
//! form of docs/reliability.md (60 s overload, 200k-request soak; CI: 10 s, 5k requests). Figures are printed as
//! `RELIABILITY {json}` lines (`cargo test --test reliability -- --nocapture`).
//!
//! Knobs: `RELIABILITY_OVERLOAD_SECS`, `RELIABILITY_SOAK_REQUESTS`, `RELIABILITY_SOAK_SECS` (time
//! budget; CI 150), `RELIABILITY_SOAK_MODEL` (a folder name under models/ or tests/fixtures/models/;
//! default all-MiniLM-L6-v2), `RELIABILITY_DRAINS`,
//! `RELIABILITY_SOAK_GROWTH_PERCENT` (CI 25, full 5),
//! `RELIABILITY_503_P99_MS` and `RELIABILITY_RECOVERY_MS`: the latency bounds asserted. The full
//! form asserts the figures (5 ms, 1000 ms); the CI form, which shares two cores with
//! other jobs, asserts 100 ms and 3000 ms so a noisy neighbour does not fail the build — the
//! figures themselves are printed either way.

#[path = "../common/mod.rs"]
mod common;
mod heavy_clients;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::load::ClosedLoop;
use common::server::Server;
use reqwest::Client;
use serde_json::json;

/// The tests in this file measure latency: one at a time (an async mutex: the guard is held
/// across the whole test; each test has its own runtime).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn full() -> bool {
    std::env::var("RELIABILITY_FULL").is_ok_and(|v| v == "1")
}

fn knob(name: &str, ci: u64, full_value: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(if full() { full_value } else { ci })
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    common::server::memory_kib(pid, "VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// A medium input (about 20 tokens), different each time.
fn text(i: usize) -> String {
    format!("request {i}: the quick brown fox jumps over the lazy dog while the server sheds load")
}

async fn sequential_latencies(client: &Client, url: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let r = client.post(url).json(&json!({"inputs": text(i)})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        out.push(started.elapsed());
    }
    out.sort();
    out
}

/// Closed-loop throughput with `concurrency` clients for `seconds`: the server's capacity.
async fn capacity(client: &Client, url: &str, concurrency: usize, seconds: f64) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|c| {
            let (client, url, done) = (client.clone(), url.to_string(), done.clone());
            tokio::spawn(async move {
                let mut i = c * 1_000_000;
                while Instant::now() < deadline {
                    i += 1;
                    let r = client.post(&url).json(&json!({"inputs": text(i)})).send().await.unwrap();
                    if r.status() == 200 {
                        r.bytes().await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / seconds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_at_ten_times_capacity() {
    let _serial = SERIAL.lock().await;
    let seconds = knob("RELIABILITY_OVERLOAD_SECS", 10, 60);
    let request_timeout = Duration::from_secs(5);
    let server = Server::start(
        "all-MiniLM-L6-v2",
        // The queue bound sets both the accepted requests' latency and the recovery time
        // (about max_queue / throughput once the load stops).
        &["--max-queue", "16", "--request-timeout", "5s", "--max-wait", "2ms"],
    );
    let url = server.url("/embed");
    let client = Client::builder().pool_max_idle_per_host(4096).build().unwrap();

    let baseline = sequential_latencies(&client, &url, 30).await;
    let baseline_p50 = percentile(&baseline, 0.5);
    let cap = capacity(&client, &url, 16, 3.0).await;
    let rss_before = rss_kib(server.pid());
    let rate = (cap * 10.0).max(100.0);

    // RSS sampler, bounded by the overload's own duration.
    let sampling = Arc::new(AtomicBool::new(true));
    let rss_max = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (sampling, rss_max, pid) = (sampling.clone(), rss_max.clone(), server.pid());
        tokio::spawn(async move {
            for _ in 0..(seconds * 10 + 100) {
                if !sampling.load(Ordering::Relaxed) {
                    break;
                }
                rss_max.fetch_max(rss_kib(pid) as usize, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Open loop: `rate` requests a second whatever the answers, sent in 10 ms ticks; at most
    // 4096 in flight (a tick that would exceed it is counted, not sent).
    let results: Arc<Mutex<Vec<(u16, Duration)>>> = Arc::default();
    let transport_errors = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut not_sent = 0usize;
    let mut sent = 0usize;
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut handles = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as usize;
        while sent < due {
            sent += 1;
            if in_flight.load(Ordering::Relaxed) >= 4096 {
                not_sent += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, url, results, errors, in_flight) =
                (client.clone(), url.clone(), results.clone(), transport_errors.clone(), in_flight.clone());
            let i = sent;
            handles.push(tokio::spawn(async move {
                let t = Instant::now();
                match client.post(&url).json(&json!({"inputs": text(i)})).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        results.lock().unwrap().push((status, t.elapsed()));
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            }));
        }
    }
    let load_end = Instant::now();

    // Recovery: sequential probes from the moment the generator stops sending.
    let normal = baseline_p50 * 2 + Duration::from_millis(5);
    let mut recovered_after = None;
    for i in 0..10_000 {
        let t = Instant::now();
        let r = client.post(&url).json(&json!({"inputs": text(i)})).send().await.unwrap();
        let status = r.status();
        r.bytes().await.unwrap();
        if status == 200 && t.elapsed() <= normal {
            recovered_after = Some(load_end.elapsed());
            break;
        }
        if status == 503 {
            // Still full: the queued requests of the load are draining.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if load_end.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    for h in handles {
        h.await.unwrap();
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();

    let results = results.lock().unwrap();
    let mut ok: Vec<Duration> = results.iter().filter(|(s, _)| *s == 200).map(|(_, d)| *d).collect();
    let mut shed: Vec<Duration> = results.iter().filter(|(s, _)| *s == 503).map(|(_, d)| *d).collect();
    let other: Vec<u16> = results.iter().map(|(s, _)| *s).filter(|s| *s != 200 && *s != 503).collect();
    ok.sort();
    shed.sort();
    let rss_max = rss_max.load(Ordering::Relaxed) as u64;
    let rss_after = rss_kib(server.pid());
    let figures = json!({
        "test": "overload", "seconds": seconds, "capacity_rps": cap.round(), "offered_rps": rate.round(),
        "sent": sent, "not_sent_in_flight_cap": not_sent, "answered": results.len(),
        "ok": ok.len(), "shed_503": shed.len(), "other_status": other.len(),
        "transport_errors": transport_errors.load(Ordering::Relaxed),
        "ok_p50_ms": ms(percentile(&ok, 0.5)), "ok_p99_ms": ms(percentile(&ok, 0.99)), "ok_max_ms": ms(percentile(&ok, 1.0)),
        "shed_p50_ms": ms(percentile(&shed, 0.5)), "shed_p99_ms": ms(percentile(&shed, 0.99)),
        "baseline_p50_ms": ms(baseline_p50), "recovered_after_ms": recovered_after.map(ms),
        "rss_before_kib": rss_before, "rss_max_kib": rss_max, "rss_after_kib": rss_after,
    });
    println!("RELIABILITY {figures}");
    eprintln!("RELIABILITY {figures}");

    assert!(other.is_empty(), "only 200 and 503 may come back: {other:?}");
    assert_eq!(transport_errors.load(Ordering::Relaxed), 0, "no connection errors");
    assert!(shed.len() > ok.len(), "the offered load was over capacity: {figures}");
    // 503s are decided before any work (p50 about 1 ms). Their tail is the load generator's as much
    // as the server's: the short form sends ten times capacity from this process on the same 2
    // cores, and its p99 went from 42-62 ms on a quiet machine to 116-120 ms on a busy one with the
    // server unchanged, so the short form bounds the median tightly and the tail loosely.
    let limit_503_p50 = Duration::from_millis(knob("RELIABILITY_503_P50_MS", 20, 5));
    assert!(percentile(&shed, 0.5) < limit_503_p50, "503 p50 over {limit_503_p50:?}: {figures}");
    let limit_503 = Duration::from_millis(knob("RELIABILITY_503_P99_MS", 250, 5));
    assert!(percentile(&shed, 0.99) < limit_503, "503 p99 over {limit_503:?}: {figures}");
    assert!(percentile(&ok, 0.99) < request_timeout, "accepted p99 over the request timeout: {figures}");
    assert!(rss_max < rss_before + rss_before / 2, "RSS grew by more than half under overload: {figures}");
    let recovered = recovered_after.expect("latency never came back to normal");
    let limit_recovery = Duration::from_millis(knob("RELIABILITY_RECOVERY_MS", 3000, 1000));
    assert!(recovered < limit_recovery, "latency back to normal after {recovered:?}: {figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_soak_of_mixed_lengths() {
    let _serial = SERIAL.lock().await;
    let total = knob("RELIABILITY_SOAK_REQUESTS", 5_000, 200_000) as usize;
    // A time budget as well, so a slow or shared CI machine stops early (the figures say how many ran).
    let budget = Duration::from_secs(knob("RELIABILITY_SOAK_SECS", 150, 7200));
    let warm_up = total / 10;
    let model = std::env::var("RELIABILITY_SOAK_MODEL").unwrap_or_else(|_| "all-MiniLM-L6-v2".to_owned());
    let server = Server::start(&model, &[]);
    let url = server.url("/embed");
    let client = Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    // (request index, VmRSS KiB), sampled every `every` requests.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let every = (total / 400).max(25);
    let started = Instant::now();
    let pid = server.pid();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (client, url, next, failures, samples) =
                (client.clone(), url.clone(), next.clone(), failures.clone(), samples.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || started.elapsed() > budget {
                        break;
                    }
                    // Mixed lengths: 1 to 48 words, 1 or 2 inputs per request.
                    let words = 1 + (i * 7919) % 48;
                    let n = 1 + i % 2;
                    let inputs: Vec<String> =
                        (0..n).map(|k| format!("{i}-{k} {}", "soak words ".repeat(words / 2))).collect();
                    let body = json!({"inputs": inputs, "truncate": true});
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status() == 200 => {
                            r.bytes().await.unwrap();
                        }
                        other => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            // Which failure, for the figures (the first few only).
                            if failures.load(Ordering::Relaxed) <= 5 {
                                match other {
                                    Ok(r) => {
                                        eprintln!("soak failure: {} {}", r.status(), r.text().await.unwrap_or_default())
                                    }
                                    Err(e) => eprintln!("soak failure: {e}"),
                                }
                            }
                        }
                    }
                    if i % every == 0 {
                        samples.lock().unwrap().push((i, rss_kib(pid)));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let total = next.load(Ordering::Relaxed).min(total);
    let end = rss_kib(pid);
    // RSS moves with the batch mix (a batch of long inputs needs more activations, and the
    // allocator hands memory back after a delay), so single samples and peaks are noise: the peak of
    // a window swings by ±7% between windows with no trend. A leak raises the level RSS sits at,
    // so compare the median of the tenth right after warm-up with the median of the last tenth.
    // Every tenth's median and peak are printed, to show the trend (or its absence).
    let samples = samples.lock().unwrap().clone();
    let window = |k: usize| {
        let mut w: Vec<u64> =
            samples.iter().filter(|s| (k * total / 10..(k + 1) * total / 10).contains(&s.0)).map(|s| s.1).collect();
        w.sort_unstable();
        w
    };
    let tenths: Vec<Vec<u64>> = (1..10).map(window).collect();
    assert!(
        tenths.iter().all(|w| !w.is_empty()),
        "the soak did not get past its warm-up ({total} requests in {seconds:.0} s)"
    );
    let median = |w: &Vec<u64>| w[w.len() / 2];
    let peak = |w: &Vec<u64>| w[w.len() - 1];
    let percent = |from: u64, to: u64| ((to as f64 - from as f64) / from as f64 * 10_000.0).round() / 100.0;
    let (first, last) = (&tenths[0], &tenths[tenths.len() - 1]);
    let growth = percent(median(first), median(last));
    let figures = json!({
        "test": "soak", "model": model, "requests": total, "warm_up_requests": warm_up, "seconds": seconds.round(),
        "rps": (total as f64 / seconds).round(), "failures": failures.load(Ordering::Relaxed),
        "rss_median_kib_per_tenth": tenths.iter().map(median).collect::<Vec<_>>(),
        "rss_peak_kib_per_tenth": tenths.iter().map(peak).collect::<Vec<_>>(),
        "rss_end_kib": end, "rss_min_kib": samples.iter().map(|s| s.1).min(), "rss_max_kib": samples.iter().map(|s| s.1).max(),
        "growth_after_warm_up_percent": growth,
        "peak_growth_after_warm_up_percent": percent(peak(first), peak(last)),
    });
    println!("RELIABILITY {figures}");
    eprintln!("RELIABILITY {figures}");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "{figures}");
    // The bound (5%) is asserted on the full 200k form; the CI form runs a few thousand
    // requests, where allocator warm-up (a malloc arena per new blocking-pool thread) still moves
    // RSS by ±15%, so it only catches gross leaks.
    let limit = knob("RELIABILITY_SOAK_GROWTH_PERCENT", 25, 5) as f64;
    assert!(growth < limit, "RSS grew {growth:.2}% after warm-up (limit {limit}%): {figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load_repeated() {
    let _serial = SERIAL.lock().await;
    let rounds = knob("RELIABILITY_DRAINS", 20, 20);
    let client = Client::new();
    let mut total_ok = 0;
    for round in 0..rounds {
        let mut server = Server::start("all-MiniLM-L6-v2", &["--drain-delay", "300ms", "--shutdown-timeout", "10s"]);
        let load = ClosedLoop::start(&client, server.url("/embed"), 8, &format!("drain round {round}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        load.listener_closes_in(Duration::from_millis(250));
        server.sigterm();
        let status = server.wait_exit(Duration::from_secs(15)).expect("exits within the grace period");
        let tally = load.stop().await;
        assert!(status.success(), "round {round}: exit status {status:?}");
        assert_eq!(tally.lost, 0, "round {round}: an accepted request was lost");
        assert!(tally.ok > 0, "round {round}: load was flowing");
        assert!(server.wait_log("shut down cleanly", Duration::from_secs(2)), "round {round}");
        total_ok += tally.ok;
    }
    let figures = json!({"test": "drain", "rounds": rounds, "ok_requests": total_ok, "lost": 0});
    println!("RELIABILITY {figures}");
    eprintln!("RELIABILITY {figures}");
}

/// A text of about `words` tokens (one per word, plus the two special tokens).
fn long_text(i: usize, words: usize) -> String {
    let mut t = format!("doc{i}");
    for w in 0..words.saturating_sub(1) {
        t.push_str(if w % 2 == 0 { " alpha" } else { " beta" });
    }
    t
}

/// What a batch flood's clients saw: inputs served with 200, the other statuses, and the latency
/// of each request answered 200.
type Flood = (usize, Vec<u16>, Vec<Duration>);

/// `clients` closed-loop clients sending batch-class requests of `inputs` × about 510 tokens until
/// `stop`.
fn batch_flood(
    client: &Client,
    url: &str,
    clients: usize,
    inputs: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Flood>> {
    (0..clients)
        .map(|c| {
            let (client, url, stop) = (client.clone(), url.to_string(), stop.clone());
            tokio::spawn(async move {
                let (mut served, mut other, mut latencies) = (0, Vec::new(), Vec::new());
                let mut i = c * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body: Vec<String> = (0..inputs).map(|k| long_text(i * 64 + k, 508)).collect();
                    let sent = Instant::now();
                    let r = client
                        .post(&url)
                        .header("x-priority", "batch")
                        .json(&json!({"inputs": body, "truncate": true}))
                        .send();
                    match r.await {
                        Ok(r) if r.status() == 200 => {
                            r.bytes().await.unwrap();
                            served += inputs;
                            latencies.push(sent.elapsed());
                        }
                        Ok(r) => {
                            other.push(r.status().as_u16());
                            // A hostile bulk client: it retries at once, whatever Retry-After says.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(_) => other.push(0),
                    }
                }
                (served, other, latencies)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_requests_stay_fast_while_batch_clients_flood() {
    let _serial = SERIAL.lock().await;
    let seconds = knob("RELIABILITY_PRIORITY_SECS", 10, 60);
    let server = Server::start("all-MiniLM-L6-v2", &[]);
    let url = server.url("/embed");
    let client = Client::builder().pool_max_idle_per_host(64).build().unwrap();

    // Batch throughput alone.
    let alone_secs = (seconds / 3).max(4);
    let stop = Arc::new(AtomicBool::new(false));
    let flood = batch_flood(&client, &url, 4, 32, stop.clone());
    tokio::time::sleep(Duration::from_secs(alone_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut alone = 0;
    for f in flood {
        alone += f.await.unwrap().0;
    }
    let alone_rate = alone as f64 / alone_secs as f64;

    // The same flood, with an interactive short input every 100 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = batch_flood(&client, &url, 4, 32, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut probes = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        i += 1;
        let (client, url) = (client.clone(), url.clone());
        probes.push(tokio::spawn(async move {
            let t = Instant::now();
            let r =
                client.post(&url).header("x-priority", "interactive").json(&json!({"inputs": format!("query {i}")}));
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            r.bytes().await.unwrap();
            (status, t.elapsed())
        }));
    }
    let mixed_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for p in probes {
        let (status, latency) = p.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        latencies.push(latency);
    }
    let (mut mixed, mut batch_refused, mut batch_latencies) = (0, 0, Vec::new());
    for f in flood {
        let (served, other, answered) = f.await.unwrap();
        mixed += served;
        batch_refused += other.len();
        batch_latencies.extend(answered);
    }
    batch_latencies.sort();
    let batch_p50 = percentile(&batch_latencies, 0.5);
    let mixed_rate = mixed as f64 / (mixed_secs + 0.5);
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let share = mixed_rate / alone_rate.max(1e-9);
    println!(
        "RELIABILITY {}",
        json!({
            "test": "priority", "seconds": seconds, "interactive_requests": latencies.len(),
            "interactive_statuses": statuses, "interactive_p50_ms": ms(p50), "interactive_p99_ms": ms(p99),
            "batch_inputs_per_s_alone": alone_rate, "batch_inputs_per_s_with_interactive": mixed_rate,
            "batch_throughput_kept": share, "batch_requests_refused": batch_refused,
            "batch_p50_ms": ms(batch_p50),
        })
    );
    assert_eq!(statuses.get(&200), Some(&latencies.len()), "every interactive request got 200: {statuses:?}");
    assert!(alone > 0 && mixed > 0, "batch work was served both times (it never starves)");
    // Without priority an interactive input would queue behind the flood as a batch request does.
    // The short form runs on a debug build on whatever CPU CI has, so its bound is relative to
    // the batch requests' own latency in the same run; the full form asserts the bound.
    assert!(
        p99 * 4 <= batch_p50,
        "interactive p99 {p99:?} is not a quarter of the batch requests' p50 {batch_p50:?} beside them"
    );
    if full() {
        let p99_bound = knob("RELIABILITY_INTERACTIVE_P99_MS", 300, 300);
        assert!(p99 <= Duration::from_millis(p99_bound), "interactive p99 {p99:?} over {p99_bound} ms");
        assert!(share >= 0.85, "batch kept {share:.2} of its throughput alone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_leaves_an_equal_tenant_its_half() {
    let _serial = SERIAL.lock().await;
    let seconds = knob("RELIABILITY_TENANT_SECS", 8, 30);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    let hash = |k: &str| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(k.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    };
    let keys = json!({"keys": [
        {"sha256": hash("key-flood"), "tenant": "flood"},
        {"sha256": hash("key-steady"), "tenant": "steady"},
    ]});
    std::fs::write(&file, keys.to_string()).unwrap();
    let server = Server::start("all-MiniLM-L6-v2", &["--api-keys-file", file.to_str().unwrap()]);
    let url = server.url("/embed");
    let client = Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // The flooding tenant runs 12 clients, the steady one 4; both send 8 inputs of ~60 tokens. The
    // steady tenant keeps more inputs in flight than its half of a batch, so it is always queued:
    // fair share is a share of capacity among tenants that want it, not a reservation.
    let spawn = |key: &'static str, clients: usize| -> Vec<tokio::task::JoinHandle<(usize, usize)>> {
        (0..clients)
            .map(|c| {
                let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut ok, mut refused) = (0, 0);
                    let mut i = c * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let body: Vec<String> = (0..8).map(|k| long_text(i * 8 + k, 58)).collect();
                        let r = client.post(&url).bearer_auth(key).json(&json!({"inputs": body})).send().await.unwrap();
                        if r.status() == 200 {
                            r.bytes().await.unwrap();
                            // Only answers within the window count: the requests still in flight
                            // when it closes are mostly the flooding tenant's, and would tilt
                            // the share towards it however fair the queue was.
                            ok += usize::from(!stop.load(Ordering::Relaxed));
                        } else {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    (ok, refused)
                })
            })
            .collect()
    };
    let flood = spawn("key-flood", 12);
    let steady = spawn("key-steady", 4);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let total = |handles: Vec<tokio::task::JoinHandle<(usize, usize)>>| async move {
        let mut sum = (0, 0);
        for h in handles {
            let (ok, refused) = h.await.unwrap();
            sum = (sum.0 + ok, sum.1 + refused);
        }
        sum
    };
    let (flood_ok, flood_refused) = total(flood).await;
    let (steady_ok, steady_refused) = total(steady).await;
    let share = steady_ok as f64 / (flood_ok + steady_ok).max(1) as f64;
    println!(
        "RELIABILITY {}",
        json!({
            "test": "tenant_fair_share", "seconds": seconds, "flood_requests_ok": flood_ok,
            "flood_refused": flood_refused, "steady_requests_ok": steady_ok, "steady_refused": steady_refused,
            "steady_share": share,
        })
    );
    // Per-request fairness alone would give the steady tenant 4 of 16 clients' worth: 25%.
    // With requests served whole within a quantum and only the window's answers counted, the
    // short form measured 0.45 in about six batches on a loaded 2-core machine (docs/reliability.md);
    // the short bound keeps a margin for so few batches.
    assert!(share >= if full() { 0.45 } else { 0.33 }, "the steady tenant got {share:.2} of the capacity");
}
