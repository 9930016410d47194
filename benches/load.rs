//! Load benchmark: drives the real `pipeserve` binary over HTTP (loopback, bounded in time) and
//! reports throughput and p50/p99 latency at concurrency 1, 8, 32, 128 for short (~10 tokens),
//! long (~128 tokens) and mixed (alternating) inputs, under each batching policy, and the server's
//! peak RSS. Before the servers start it measures, in this process and on the same cores, the
//! references the serving numbers are held against: tokenization, one forward pass of one input,
//! and the model-only throughput at the batch size the server uses. Per cell it reads the server's
//! own metrics (`/metrics`, before and after) into a stage breakdown (tokenize, queue wait, forward,
//! the rest) and the padding the batches carried, in tokens. It renders throughput against p99
//! (one curve per policy) to a PNG, and, for a length sweep, throughput and p99 against length
//! and against concurrency.
//!
//! `cargo bench --bench load [--features mkl]` (after `python3 scripts/fetch_models.py`).
//! Environment:
//! - `BENCH_SECONDS` per cell (default 5), `BENCH_CONCURRENCY` (default "1,8,32,128");
//! - `BENCH_MODES` (default "fifo,length,no-batching"): a batching policy, `no-batching`,
//!   `instances-N` (the default policy with `--instances N`) or `torch`, the plain PyTorch server
//!   of scripts/torch_server.py run by `BENCH_TORCH_PYTHON` (default .venv-golden/bin/python);
//!   a mode may repeat, to alternate;
//! - `BENCH_INPUTS` (default "short,long,mixed"; `tokens-N` is a text of N tokens, so
//!   "tokens-16,tokens-64,tokens-512" is a length sweep);
//! - `BENCH_MODEL`, `BENCH_ARGS` (extra server flags), `BENCH_JSON` (results as JSON lines),
//!   `BENCH_FROM_JSON` (targets and plots again from such a file, measuring nothing);
//! - `BENCH_PLOT` (PNG path, default docs/load.png; empty: no plots), `BENCH_PLOT_INPUT` (the
//!   input plotted, default mixed), `BENCH_SWEEP_PLOT` (prefix of the sweep's PNGs, default
//!   docs/sweep), `BENCH_FONT` (a TTF for the plots' text, default DejaVu Sans);
//! - `BENCH_PERF` (e.g. "short@1,short@32"): cells to sample with `perf record` on the server
//!   process, reported as CPU shares per part of the request path (benches/load/profile.rs).

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Parser;
use pipeserve::config::Config;
use pipeserve::load::{self, LoadConfig, Loaded};
use pipeserve::model::ModelInput;
use serde_json::json;

#[path = "support/ceiling.rs"]
mod ceiling;
/// The child-process harness the integration tests use.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "load/plot.rs"]
mod plot;
#[path = "load/profile.rs"]
mod profile;
#[path = "load/stages.rs"]
mod stages;
#[path = "support/timing.rs"]
mod timing;

use common::server::Server;
use stages::Stages;

/// The server's allocator (src/main.rs), for the in-process references.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Peak (`VmHWM`, model loading included) or current (`VmRSS`) resident memory of a process, in MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    common::server::memory_kib(pid, field) as f64 / 1024.0
}

/// One input kind: its texts (sent in turn) and their token counts.
#[derive(Clone)]
pub struct Input {
    pub kind: String,
    pub texts: Vec<String>,
    pub tokens: Vec<usize>,
}

/// One measured cell.
#[derive(Clone, Debug)]
pub struct Row {
    pub mode: String,
    pub input: String,
    pub concurrency: usize,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub errors: usize,
    /// Tokens (with [CLS]/[SEP]) of the requests served per second.
    pub tokens_per_s: f64,
    /// The server's own view of the cell (pipeserve only).
    pub stages: Option<Stages>,
}

struct Cell {
    requests: usize,
    tokens: usize,
    errors: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    stages: Option<Stages>,
}

/// Closed-loop clients; client `c`'s `n`-th request sends `texts[(c + n) % texts.len()]`. After a
/// second of warm-up, the measured part runs `seconds`, bracketed by `/metrics` scrapes (pipeserve)
/// and sampled by `perf` when `perf_pid` is set.
async fn run_cell(
    base: &str,
    input: &Input,
    concurrency: usize,
    seconds: f64,
    metrics: bool,
    perf_pid: Option<u32>,
) -> (Cell, Option<profile::Profile>) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let url = format!("{base}/embed");
    let bodies: Vec<String> = input.texts.iter().map(|t| json!({"inputs": t}).to_string()).collect();
    let run = |duration: Duration| {
        let tasks: Vec<_> = (0..concurrency)
            .map(|c| {
                let (client, url, bodies, tokens) = (client.clone(), url.clone(), bodies.clone(), input.tokens.clone());
                tokio::spawn(async move {
                    let end = Instant::now() + duration;
                    let (mut lat, mut errors, mut served_tokens, mut n) = (Vec::new(), 0usize, 0usize, c);
                    while Instant::now() < end {
                        let which = n % bodies.len();
                        n += 1;
                        let t = Instant::now();
                        let r = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(bodies[which].clone())
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().is_success() => {
                                let _ = r.bytes().await;
                                lat.push(t.elapsed());
                                served_tokens += tokens[which];
                            }
                            _ => errors += 1,
                        }
                    }
                    (lat, errors, served_tokens)
                })
            })
            .collect::<Vec<_>>();
        async move {
            let (mut all, mut errors, mut tokens) = (Vec::new(), 0, 0);
            for t in tasks {
                let (l, e, k) = t.await.unwrap();
                all.extend(l);
                errors += e;
                tokens += k;
            }
            (all, errors, tokens)
        }
    };
    run(Duration::from_secs(1)).await;
    let before = if metrics { Some(stages::scrape(base).await) } else { None };
    let recording = perf_pid.map(|pid| profile::record(pid, seconds));
    let started = Instant::now();
    let (mut latencies, errors, tokens) = run(Duration::from_secs_f64(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let profile = recording.map(profile::Recording::finish);
    let stages = match before {
        Some(before) => Some(Stages::between(&before, &stages::scrape(base).await, tokens)),
        None => None,
    };
    latencies.sort();
    (Cell { requests: latencies.len(), tokens, errors, seconds: elapsed, latencies, stages }, profile)
}

/// Median seconds of `f` over about `seconds`.
fn median_secs(seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds || times.len() < 5 {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Inputs per batch the server forms from a full queue of `input` (in turn): at most `size`, and
/// at most `tokens` padded tokens (longest × count), like src/batching/queue.rs.
fn server_batch(input: &Input, size: usize, tokens: usize) -> usize {
    let longest = input.tokens.iter().copied().max().unwrap_or(1);
    size.min(tokens / longest).max(1)
}

/// In-process references for one input kind: tokenization, a batch-1 forward, and model-only
/// inputs/s at `batch` inputs per forward.
fn references(engine: &Loaded, input: &Input, batch: usize, seconds: f64) -> serde_json::Value {
    let encoded: Vec<_> = input.texts.iter().map(|t| engine.tokenizer.encode(t, false).expect("tokenize")).collect();
    let tokenize = median_secs(seconds / 4.0, || {
        engine.tokenizer.encode(&input.texts[0], false).unwrap();
    });
    let one = [ModelInput { ids: &encoded[0].ids, type_ids: &encoded[0].type_ids }];
    let forward_1 = median_secs(seconds / 4.0, || {
        engine.model.forward(&one).unwrap();
    });
    let inputs: Vec<ModelInput<'_>> = (0..batch)
        .map(|i| &encoded[i % encoded.len()])
        .map(|e| ModelInput { ids: &e.ids, type_ids: &e.type_ids })
        .collect();
    let forward_batch = median_secs(seconds / 2.0, || {
        engine.model.forward(&inputs).unwrap();
    });
    let (kind, tokens) = (&input.kind, &input.tokens);
    let line = json!({"reference": kind, "tokens": tokens, "tokenize_ms": tokenize * 1e3,
        "forward_1_ms": forward_1 * 1e3, "batch": batch, "forward_batch_ms": forward_batch * 1e3,
        "model_only_inputs_per_s": batch as f64 / forward_batch});
    println!(
        "| {kind} | {tokens:?} | {:.2} | {:.2} | {:.2} | {batch} | {:.1} |",
        tokenize * 1e3,
        forward_1 * 1e3,
        (tokenize + forward_1) * 1e3,
        batch as f64 / forward_batch
    );
    line
}

/// A text of `n` tokens with [CLS]/[SEP], or as close below as whole words allow: words are
/// added while the text stays within `n` tokens.
fn text_of_tokens(engine: &Loaded, n: usize) -> String {
    let tokens = |t: &str| engine.tokenizer.encode(t, false).map_or(usize::MAX, |e| e.ids.len());
    let mut text = String::new();
    for word in "the server runs one model for many short and long requests from every client".split(' ').cycle() {
        let longer = if text.is_empty() { word.to_string() } else { format!("{text} {word}") };
        if tokens(&longer) > n {
            break;
        }
        text = longer;
    }
    text
}

fn inputs(engine: &Loaded, kinds: &str) -> Vec<Input> {
    // ~10 and ~128 tokens with [CLS]/[SEP] for the MiniLM tokenizer.
    let short = "The quick brown fox jumps over the dog.".to_string();
    let long = "Serving encoder models well means batching requests dynamically while keeping latency low. "
        .repeat(9)
        .split_whitespace()
        .take(86)
        .collect::<Vec<_>>()
        .join(" ");
    kinds
        .split(',')
        .map(|kind| {
            let texts = match kind {
                "short" => vec![short.clone()],
                "long" => vec![long.clone()],
                "mixed" => vec![short.clone(), long.clone()],
                other => match other.strip_prefix("tokens-").and_then(|n| n.parse().ok()) {
                    Some(n) => vec![text_of_tokens(engine, n)],
                    None => panic!("unknown input kind {other} (short, long, mixed or tokens-N)"),
                },
            };
            let tokens = texts.iter().map(|t| engine.tokenizer.encode(t, false).expect("tokenize").ids.len()).collect();
            Input { kind: kind.to_string(), texts, tokens }
        })
        .collect()
}

/// Starts the server a mode names: pipeserve with that mode's flags, or the PyTorch reference.
fn start(mode: &str, model: &str, extra: &[String]) -> Server {
    if mode == "torch" {
        let python = std::env::var("BENCH_TORCH_PYTHON").unwrap_or_else(|_| ".venv-golden/bin/python".into());
        let mut command = std::process::Command::new(python);
        command.args(["scripts/torch_server.py", "--model", model, "--host", "127.0.0.1", "--port", "0"]);
        return Server::spawn(command, "ready");
    }
    let mut args = extra.to_vec();
    let mut instances = 1;
    match mode {
        "no-batching" => args.extend(["--max-batch-size".to_string(), "1".to_string()]),
        m if m.starts_with("instances-") => {
            instances = m["instances-".len()..].parse().expect("instances-N");
            args.extend(["--instances".to_string(), instances.to_string()]);
        }
        policy => args.extend(["--batch-policy".to_string(), policy.to_string()]),
    }
    args.extend(["--max-queue".to_string(), "100000".to_string()]);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    // The server inherits this process's thread settings (for one instance): give it those it
    // would choose itself for its instances.
    let threads = pipeserve::threads::environment(pipeserve::threads::per_instance(0, instances, 0));
    let threads: Vec<(&str, String)> = threads.into_iter().map(|(k, v)| (k, v.to_string())).collect();
    let env: Vec<(&str, &str)> = threads.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::launch(model, &arg_refs, &env, "ready")
}

fn main() {
    // The thread settings the server uses (src/threads.rs), before candle starts any thread.
    pipeserve::threads::configure(0);
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let model = var("BENCH_MODEL", "models/all-MiniLM-L6-v2");
    let seconds: f64 = var("BENCH_SECONDS", "5").parse().expect("BENCH_SECONDS");
    let levels: Vec<usize> =
        var("BENCH_CONCURRENCY", "1,8,32,128").split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let modes = var("BENCH_MODES", "fifo,length,no-batching");
    let kinds = var("BENCH_INPUTS", "short,long,mixed");
    let extra: Vec<String> = var("BENCH_ARGS", "").split_whitespace().map(String::from).collect();
    let plot_path = var("BENCH_PLOT", "docs/load.png");
    let plot_input = var("BENCH_PLOT_INPUT", "mixed");
    let sweep_prefix = var("BENCH_SWEEP_PLOT", "docs/sweep");
    let perf_cells: Vec<String> =
        var("BENCH_PERF", "").split(',').filter(|s| !s.is_empty()).map(String::from).collect();
    if let Ok(path) = std::env::var("BENCH_FROM_JSON") {
        // Targets and plots again from a run's JSON lines, without measuring.
        let m = Measured::from_json(&path);
        let weights = std::fs::metadata(format!("{model}/model.safetensors")).map_or(0.0, |m| m.len() as f64);
        report(&m, &model, (1.3 * weights + 100e6) / 1048576.0, &plot_path, &plot_input, &sweep_prefix);
        return;
    }
    let mut json_out = std::env::var("BENCH_JSON").ok().map(|p| std::fs::File::create(p).unwrap());
    let mut emit = |line: serde_json::Value| {
        if let Some(f) = json_out.as_mut() {
            writeln!(f, "{line}").unwrap();
        }
    };
    let backend = if cfg!(feature = "mkl") { "mkl" } else { "gemm crate" };
    println!("load benchmark: {model}, candle CPU matmul: {backend}, {seconds} s per cell, loopback\n");

    // The server's batching limits (its defaults, or BENCH_ARGS), for the model-only reference.
    let limits = Config::try_parse_from(
        ["pipeserve", "--model", model.as_str()].into_iter().chain(extra.iter().map(String::as_str)),
    )
    .expect("BENCH_ARGS are server flags")
    .batching();
    let mut refs: Vec<(String, serde_json::Value)> = Vec::new();
    let peak_gflops;
    let inputs = {
        let engine = load::load(&LoadConfig { model: model.clone(), ..LoadConfig::default() })
            .unwrap_or_else(|e| panic!("{e} (run python3 scripts/fetch_models.py)"));
        let inputs = inputs(&engine, &kinds);
        println!("in-process references (same cores, no HTTP):\n");
        println!(
            "| input | tokens | tokenize ms | forward(1) ms | tokenize + forward(1) ms | batch | model-only inputs/s |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|");
        for input in &inputs {
            let batch = server_batch(input, limits.max_batch_size, limits.max_batch_tokens);
            let line = references(&engine, input, batch, seconds);
            refs.push((input.kind.clone(), line.clone()));
            emit(line);
        }
        println!();
        peak_gflops = ceiling::f32_peak(seconds / 4.0);
        println!("f32 matmul peak in this run (best of the model's shapes): {peak_gflops:.1} GFLOP/s\n");
        emit(json!({"f32_peak_gflops": peak_gflops}));
        inputs
    };

    println!("| mode | input | concurrency | req/s | tokens/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut results: Vec<Row> = Vec::new();
    let mut profiles = Vec::new();
    let mut rss = Vec::new();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    for mode in modes.split(',') {
        let server = start(mode, &model, &extra);
        let pipeserve = mode != "torch";
        // Resident memory while serving: sampled right after each cell (allocators keep what the
        // cell's batches used), as opposed to VmHWM, which also holds the model-loading peak.
        let mut serving_rss = 0f64;
        for input in &inputs {
            for &c in &levels {
                let perf = perf_cells.contains(&format!("{}@{c}", input.kind)) && pipeserve;
                let perf_pid = perf.then(|| server.pid());
                let (cell, profile) = runtime.block_on(run_cell(&server.base, input, c, seconds, pipeserve, perf_pid));
                let pct = |p: f64| {
                    let lat = &cell.latencies;
                    let i = ((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1));
                    lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
                };
                let mean_ms = cell.latencies.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3
                    / cell.latencies.len().max(1) as f64;
                let row = Row {
                    mode: mode.to_string(),
                    input: input.kind.clone(),
                    concurrency: c,
                    rps: cell.requests as f64 / cell.seconds,
                    p50_ms: pct(0.50),
                    p99_ms: pct(0.99),
                    mean_ms,
                    errors: cell.errors,
                    tokens_per_s: cell.tokens as f64 / cell.seconds,
                    stages: cell.stages,
                };
                println!(
                    "| {mode} | {} | {c} | {:.1} | {:.0} | {:.1} | {:.1} | {} |",
                    row.input, row.rps, row.tokens_per_s, row.p50_ms, row.p99_ms, row.errors
                );
                emit(json!({"mode": mode, "input": row.input, "concurrency": c, "rps": row.rps,
                    "tokens_per_s": row.tokens_per_s, "p50_ms": row.p50_ms, "p99_ms": row.p99_ms,
                    "mean_ms": row.mean_ms, "errors": row.errors, "stages": row.stages.as_ref().map(Stages::json)}));
                if let Some(p) = profile {
                    profiles.push((format!("{mode}, {} @ c={c}", input.kind), p));
                }
                results.push(row);
                serving_rss = serving_rss.max(memory_mib(server.pid(), "VmRSS"));
            }
        }
        rss.push((mode.to_string(), memory_mib(server.pid(), "VmHWM"), serving_rss));
    }
    stages::print_table(&results);
    profile::print_tables(&profiles);
    let weights_mib =
        std::fs::metadata(format!("{model}/model.safetensors")).map_or(0.0, |m| m.len() as f64 / 1048576.0);
    println!(
        "\nmemory per server, weights {weights_mib:.1} MiB, limit 1.3 × weights + 100 MB = {:.1} MiB:",
        1.3 * weights_mib + 100e6 / 1048576.0
    );
    for (mode, peak, serving) in &rss {
        println!("- {mode}: largest RSS after a cell {serving:.1} MiB; VmHWM (with model loading) {peak:.1} MiB");
        emit(json!({"rss_mode": mode, "peak_rss_mib": peak, "serving_rss_mib": serving, "weights_mib": weights_mib}));
    }
    let limit_mib = 1.3 * weights_mib + 100e6 / 1048576.0;
    let measured = Measured { refs, inputs, peak_gflops, results, rss };
    report(&measured, &model, limit_mib, &plot_path, &plot_input, &sweep_prefix);
}

/// What one run measured: the references, the cells, the servers' memory.
struct Measured {
    refs: Vec<(String, serde_json::Value)>,
    inputs: Vec<Input>,
    peak_gflops: f64,
    results: Vec<Row>,
    rss: Vec<(String, f64, f64)>,
}

impl Measured {
    /// A run read back from its `BENCH_JSON` lines (texts and stages are not kept there).
    fn from_json(path: &str) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut m = Measured { refs: vec![], inputs: vec![], peak_gflops: 0.0, results: vec![], rss: vec![] };
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a BENCH_JSON line");
            let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
            if let Some(kind) = v["reference"].as_str() {
                let tokens =
                    v["tokens"].as_array().map(|t| t.iter().filter_map(|n| n.as_u64()).map(|n| n as usize).collect());
                m.inputs.push(Input { kind: kind.into(), texts: vec![], tokens: tokens.unwrap_or_default() });
                m.refs.push((kind.into(), v.clone()));
            } else if v.get("f32_peak_gflops").is_some() {
                m.peak_gflops = num("f32_peak_gflops");
            } else if let Some(mode) = v["mode"].as_str() {
                m.results.push(Row {
                    mode: mode.into(),
                    input: v["input"].as_str().unwrap_or_default().into(),
                    concurrency: num("concurrency") as usize,
                    rps: num("rps"),
                    p50_ms: num("p50_ms"),
                    p99_ms: num("p99_ms"),
                    mean_ms: num("mean_ms"),
                    errors: num("errors") as usize,
                    tokens_per_s: num("tokens_per_s"),
                    stages: None,
                });
            } else if let Some(mode) = v["rss_mode"].as_str() {
                m.rss.push((mode.into(), num("peak_rss_mib"), num("serving_rss_mib")));
            }
        }
        m
    }
}

/// Targets and plots of a run.
fn report(m: &Measured, model: &str, limit_mib: f64, plot_path: &str, plot_input: &str, sweep_prefix: &str) {
    let config = ceiling::read_config(model);
    targets(&m.refs, &m.results, &m.rss, m.peak_gflops, &config, limit_mib);
    if plot_path.is_empty() {
        return;
    }
    match plot::frontier(plot_path, plot_input, &m.results, model) {
        Ok(()) => println!("\nplot: {plot_path} ({plot_input} inputs)"),
        Err(e) => println!("\nno plot: {e}"),
    }
    let swept = m.inputs.iter().filter(|i| i.kind.starts_with("tokens-")).count();
    if swept >= 2 && !sweep_prefix.is_empty() {
        let ceiling = |tokens: usize| m.peak_gflops * 1e9 / ceiling::flops_per_token(&config, tokens);
        match plot::sweep(sweep_prefix, &m.results, &m.inputs, &m.refs, &ceiling, model) {
            Ok(paths) => println!("plots: {}", paths.join(", ")),
            Err(e) => println!("no sweep plots: {e}"),
        }
    }
}

/// The performance issues' targets, each held against references measured in this same run.
fn targets(
    refs: &[(String, serde_json::Value)],
    results: &[Row],
    rss: &[(String, f64, f64)],
    peak_gflops: f64,
    config: &serde_json::Value,
    limit_mib: f64,
) {
    let reference = |kind: &str| refs.iter().find(|r| r.0 == kind).map(|r| &r.1);
    let cell = |mode: &str, kind: &str, c: usize| {
        results.iter().find(|r| r.mode == mode && r.input == kind && r.concurrency == c)
    };
    let verdict = |ok: bool| if ok { "met" } else { "not met" };
    println!("\ntargets (every ratio against references from this run):\n");
    println!("| target | measured | bound | |");
    println!("|---|---|---|---|");
    for (kind, r) in refs {
        let model_only = r["model_only_inputs_per_s"].as_f64().unwrap_or(0.0);
        for mode in ["fifo", "length"] {
            if let Some(cell) = cell(mode, kind, 32) {
                let ratio = cell.rps / model_only * 100.0;
                println!("| serving / model-only at c=32, {kind}, {mode} | {:.1} / {model_only:.1} inputs/s = {ratio:.0}% | ≥ 90% | {} |", cell.rps, verdict(ratio >= 90.0));
            }
        }
    }
    if let Some(long) = reference("long") {
        let tokens = long["tokens"][0].as_u64().unwrap_or(0) as usize;
        let ceiling = peak_gflops * 1e9 / ceiling::flops_per_token(config, tokens);
        for mode in ["fifo", "length"] {
            if let Some(cell) = cell(mode, "long", 32) {
                let share = cell.tokens_per_s / ceiling * 100.0;
                println!("| long ({tokens} tokens) at c=32 vs the f32 ceiling, {mode} | {:.0} / {ceiling:.0} tokens/s = {share:.0}% | ≥ 50% | {} |", cell.tokens_per_s, verdict(share >= 50.0));
            }
        }
    }
    // Mixed cells alternate input lengths, so only the uniform inputs have one reference time.
    for (kind, r) in refs.iter().filter(|r| r.0 != "mixed") {
        let reference_ms = r["tokenize_ms"].as_f64().unwrap_or(0.0) + r["forward_1_ms"].as_f64().unwrap_or(0.0);
        for mode in ["fifo", "length"] {
            if let Some(cell) = cell(mode, kind, 1) {
                let over = (cell.p50_ms / reference_ms - 1.0) * 100.0;
                println!("| p50 at c=1 vs tokenize + forward(1), {kind}, {mode} | {:.2} / {reference_ms:.2} ms = {over:+.0}% | ≤ +15% | {} |", cell.p50_ms, verdict(over <= 15.0));
            }
        }
    }
    // The plain PyTorch server of the same run (BENCH_MODES with `torch`).
    for kind in ["long", "short", "mixed"] {
        for c in [1, 32] {
            if let (Some(ours), Some(torch)) = (cell("length", kind, c), cell("torch", kind, c)) {
                let ratio = ours.rps / torch.rps;
                let bound = if kind == "long" && c == 32 { "≥ 1.3×" } else { "(reported)" };
                let ok = if kind == "long" && c == 32 { verdict(ratio >= 1.3) } else { "" };
                println!("| pipeserve (length) / PyTorch server, {kind}, c={c} | {:.1} / {:.1} req/s = {ratio:.2}× | {bound} | {ok} |", ours.rps, torch.rps);
            }
        }
    }
    for (mode, peak, serving) in rss.iter().filter(|r| r.0 != "torch") {
        println!(
            "| RSS while serving, {mode} | {serving:.1} MiB (VmHWM {peak:.1}) | ≤ {limit_mib:.1} MiB | {} |",
            verdict(*serving <= limit_mib)
        );
    }
}
