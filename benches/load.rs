//! Load benchmark: drives the real `pipeserve` binary over HTTP (loopback, bounded in time) and
//! reports throughput and p50/p99 latency at concurrency 1, 8, 32, 128 for short (~10 tokens),
//! long (~128 tokens) and mixed (alternating) inputs, under each batching policy, and the server's
//! peak RSS. Before the servers start it measures, in this process and on the same cores, the
//! references the serving numbers are held against: tokenization, one forward pass of one input,
//! and the model-only throughput at the batch size the server uses. It renders throughput against
//! p99 latency (one curve per policy) to a PNG.
//!
//! `cargo bench --bench load [--features mkl]` (after `python3 scripts/fetch_models.py`).
//! Environment: `BENCH_SECONDS` per cell (default 5), `BENCH_CONCURRENCY` (default "1,8,32,128"),
//! `BENCH_MODES` (default "fifo,length,no-batching"; `instances-N` is the default policy with
//! `--instances N`, and a mode may repeat, to alternate), `BENCH_INPUTS` (default "short,long,mixed"),
//! `BENCH_MODEL`, `BENCH_ARGS` (extra server flags), `BENCH_JSON` (results as JSON lines),
//! `BENCH_PLOT` (PNG path, default docs/load.png; empty: no plot), `BENCH_PLOT_INPUT` (the input
//! kind plotted, default mixed), `BENCH_FONT` (a TTF for the plot's text, default DejaVu Sans).

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

use common::server::Server;

/// The server's allocator (src/main.rs), for the in-process references.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Peak (`VmHWM`, model loading included) or current (`VmRSS`) resident memory of a process, in MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    common::server::memory_kib(pid, field) as f64 / 1024.0
}

struct Cell {
    requests: usize,
    errors: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
}

/// Closed-loop clients; client `c`'s `n`-th request sends `texts[(c + n) % texts.len()]`.
async fn run_cell(base: &str, texts: &[String], concurrency: usize, seconds: f64) -> Cell {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let url = format!("{base}/embed");
    let bodies: Vec<String> = texts.iter().map(|t| json!({"inputs": t}).to_string()).collect();
    let run = |duration: Duration| {
        let tasks: Vec<_> = (0..concurrency)
            .map(|c| {
                let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
                tokio::spawn(async move {
                    let end = Instant::now() + duration;
                    let (mut lat, mut errors, mut n) = (Vec::new(), 0usize, c);
                    while Instant::now() < end {
                        let body = bodies[n % bodies.len()].clone();
                        n += 1;
                        let t = Instant::now();
                        let r = client.post(&url).header("content-type", "application/json").body(body).send().await;
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
    // Warm-up: a second of the same load.
    run(Duration::from_secs(1)).await;
    let started = Instant::now();
    let (mut lat, errors) = run(Duration::from_secs_f64(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    Cell { requests: lat.len(), errors, seconds: elapsed, p50: pct(0.50), p99: pct(0.99) }
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

/// Inputs per batch the server forms from a full queue of `texts` (in turn): at most `size`, and
/// at most `tokens` padded tokens (longest × count), like src/batching/queue.rs.
fn server_batch(engine: &Loaded, texts: &[String], size: usize, tokens: usize) -> usize {
    let longest =
        texts.iter().map(|t| engine.tokenizer.encode(t, false).expect("tokenize").ids.len()).max().unwrap_or(1);
    size.min(tokens / longest).max(1)
}

/// In-process references for one input kind: tokenization, a batch-1 forward, and model-only
/// inputs/s at `batch` inputs per forward.
fn references(engine: &Loaded, kind: &str, texts: &[String], batch: usize, seconds: f64) -> serde_json::Value {
    let encoded: Vec<_> = texts.iter().map(|t| engine.tokenizer.encode(t, false).expect("tokenize")).collect();
    let tokens: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
    let tokenize = median_secs(seconds / 4.0, || {
        engine.tokenizer.encode(&texts[0], false).unwrap();
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

fn main() {
    // The thread settings the server uses (src/threads.rs), before candle starts any thread.
    pipeserve::threads::configure(0);
    let model = std::env::var("BENCH_MODEL").unwrap_or_else(|_| "models/all-MiniLM-L6-v2".into());
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let levels: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,8,32,128".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "fifo,length,no-batching".into());
    let kinds = std::env::var("BENCH_INPUTS").unwrap_or_else(|_| "short,long,mixed".into());
    let extra: Vec<String> =
        std::env::var("BENCH_ARGS").unwrap_or_default().split_whitespace().map(String::from).collect();
    let plot_path = std::env::var("BENCH_PLOT").unwrap_or_else(|_| "docs/load.png".into());
    let plot_input = std::env::var("BENCH_PLOT_INPUT").unwrap_or_else(|_| "mixed".into());
    let mut json_out = std::env::var("BENCH_JSON").ok().map(|p| std::fs::File::create(p).unwrap());
    let mut emit = |line: serde_json::Value| {
        if let Some(f) = json_out.as_mut() {
            writeln!(f, "{line}").unwrap();
        }
    };
    // ~10 and ~128 tokens with [CLS]/[SEP] for the MiniLM tokenizer.
    let short = "The quick brown fox jumps over the dog.".to_string();
    let long = "Serving encoder models well means batching requests dynamically while keeping latency low. "
        .repeat(9)
        .split_whitespace()
        .take(86)
        .collect::<Vec<_>>()
        .join(" ");
    let texts_of = |kind: &str| -> Vec<String> {
        match kind {
            "short" => vec![short.clone()],
            "long" => vec![long.clone()],
            "mixed" => vec![short.clone(), long.clone()],
            other => panic!("unknown input kind {other}"),
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
    {
        let engine = load::load(&LoadConfig {
            model: model.clone(),
            hub: Default::default(),
            task: None,
            device: Default::default(),
            dtype: Default::default(),
            max_input_tokens: None,
            ..LoadConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e} (run python3 scripts/fetch_models.py)"));
        println!("in-process references (same cores, no HTTP):\n");
        println!(
            "| input | tokens | tokenize ms | forward(1) ms | tokenize + forward(1) ms | batch | model-only inputs/s |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|");
        for kind in kinds.split(',') {
            let texts = texts_of(kind);
            let batch = server_batch(&engine, &texts, limits.max_batch_size, limits.max_batch_tokens);
            let line = references(&engine, kind, &texts, batch, seconds);
            refs.push((kind.to_string(), line.clone()));
            emit(line);
        }
        println!();
        peak_gflops = ceiling::f32_peak(seconds / 4.0);
        println!("f32 matmul peak in this run (best of the model's shapes): {peak_gflops:.1} GFLOP/s\n");
        emit(json!({"f32_peak_gflops": peak_gflops}));
    }

    println!("| policy | input | concurrency | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut results: Vec<(String, String, usize, f64, f64, f64)> = Vec::new();
    let mut rss = Vec::new();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    for mode in modes.split(',') {
        let mut args = extra.clone();
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
        let server = Server::launch(&model, &arg_refs, &env, "ready");
        // Resident memory while serving: sampled right after each cell (allocators keep what the
        // cell's batches used), as opposed to VmHWM, which also holds the model-loading peak.
        let mut serving_rss = 0f64;
        for kind in kinds.split(',') {
            let texts = texts_of(kind);
            for &c in &levels {
                let cell = runtime.block_on(run_cell(&server.base, &texts, c, seconds));
                let rps = cell.requests as f64 / cell.seconds;
                let (p50, p99) = (cell.p50.as_secs_f64() * 1e3, cell.p99.as_secs_f64() * 1e3);
                println!("| {mode} | {kind} | {c} | {rps:.1} | {p50:.1} | {p99:.1} | {} |", cell.errors);
                emit(json!({"mode": mode, "input": kind, "concurrency": c, "rps": rps,
                    "p50_ms": p50, "p99_ms": p99, "errors": cell.errors}));
                results.push((mode.to_string(), kind.to_string(), c, rps, p99, p50));
                serving_rss = serving_rss.max(memory_mib(server.pid(), "VmRSS"));
            }
        }
        rss.push((mode.to_string(), memory_mib(server.pid(), "VmHWM"), serving_rss));
    }
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
    targets(&refs, &results, &rss, peak_gflops, &ceiling::read_config(&model), limit_mib);
    if !plot_path.is_empty() {
        match plot::render(&plot_path, &plot_input, &results, &model) {
            Ok(()) => println!("\nplot: {plot_path} ({plot_input} inputs)"),
            Err(e) => println!("\nno plot: {e}"),
        }
    }
}

/// The performance issue's targets, each held against references measured in this same run.
fn targets(
    refs: &[(String, serde_json::Value)],
    results: &[(String, String, usize, f64, f64, f64)],
    rss: &[(String, f64, f64)],
    peak_gflops: f64,
    config: &serde_json::Value,
    limit_mib: f64,
) {
    let reference = |kind: &str| refs.iter().find(|r| r.0 == kind).map(|r| &r.1);
    let cell = |mode: &str, kind: &str, c: usize| results.iter().find(|r| r.0 == mode && r.1 == kind && r.2 == c);
    let verdict = |ok: bool| if ok { "met" } else { "not met" };
    println!("\ntargets (every ratio against references from this run):\n");
    println!("| target | measured | bound | |");
    println!("|---|---|---|---|");
    for (kind, r) in refs {
        let model_only = r["model_only_inputs_per_s"].as_f64().unwrap_or(0.0);
        for mode in ["fifo", "length"] {
            if let Some(cell) = cell(mode, kind, 32) {
                let ratio = cell.3 / model_only * 100.0;
                println!("| serving / model-only at c=32, {kind}, {mode} | {:.1} / {model_only:.1} inputs/s = {ratio:.0}% | ≥ 85% | {} |", cell.3, verdict(ratio >= 85.0));
            }
        }
    }
    if let Some(long) = reference("long") {
        let tokens = long["tokens"][0].as_u64().unwrap_or(0) as usize;
        let ceiling = peak_gflops * 1e9 / ceiling::flops_per_token(config, tokens);
        for mode in ["fifo", "length"] {
            if let Some(cell) = cell(mode, "long", 32) {
                let rate = cell.3 * tokens as f64;
                let share = rate / ceiling * 100.0;
                println!("| long ({tokens} tokens) at c=32 vs the f32 ceiling, {mode} | {rate:.0} / {ceiling:.0} tokens/s = {share:.0}% | ≥ 50% | {} |", verdict(share >= 50.0));
            }
        }
    }
    // Mixed cells alternate input lengths, so only the uniform inputs have one reference time.
    for (kind, r) in refs.iter().filter(|r| r.0 != "mixed") {
        let reference_ms = r["tokenize_ms"].as_f64().unwrap_or(0.0) + r["forward_1_ms"].as_f64().unwrap_or(0.0);
        if let Some(cell) = cell("fifo", kind, 1) {
            let over = (cell.5 / reference_ms - 1.0) * 100.0;
            println!("| p50 at c=1 vs tokenize + forward(1), {kind} | {:.2} / {reference_ms:.2} ms = {over:+.0}% | ≤ +10% | {} |", cell.5, verdict(over <= 10.0));
        }
    }
    for (mode, peak, serving) in rss {
        println!(
            "| RSS while serving, {mode} | {serving:.1} MiB (VmHWM {peak:.1}) | ≤ {limit_mib:.1} MiB | {} |",
            verdict(*serving <= limit_mib)
        );
    }
}

mod plot {
    //! Throughput against p99 latency, one curve per policy, points in concurrency order.

    use plotters::prelude::*;
    use plotters::style::{register_font, FontStyle};

    pub fn render(
        path: &str,
        input: &str,
        results: &[(String, String, usize, f64, f64, f64)],
        model: &str,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let font =
            std::env::var("BENCH_FONT").unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
        let bytes = std::fs::read(&font).map_err(|e| format!("font {font}: {e} (set BENCH_FONT to a TTF)"))?;
        register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
            .map_err(|_| format!("font {font} is not a usable TTF"))?;
        let points: Vec<_> = results.iter().filter(|r| r.1 == input).collect();
        if points.is_empty() {
            return Err(format!("no results for input {input}").into());
        }
        let max_rps = points.iter().map(|r| r.3).fold(1.0, f64::max) * 1.15;
        let (min_p99, max_p99) = points.iter().fold((f64::MAX, 1.0f64), |(lo, hi), r| (lo.min(r.4), hi.max(r.4)));
        let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
        root.fill(&WHITE)?;
        let name = model.trim_end_matches('/').rsplit('/').next().unwrap_or(model);
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{name}, {input} inputs: throughput vs p99 latency"), ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((min_p99 * 0.7..max_p99 * 1.4).log_scale(), 0.0..max_rps)?;
        chart
            .configure_mesh()
            .x_desc("p99 latency (ms, log scale)")
            .y_desc("throughput (requests/s)")
            .label_style(("sans-serif", 15))
            .draw()?;
        let colors = [RED, BLUE, RGBColor(0, 150, 0), MAGENTA, CYAN];
        let mut modes: Vec<&str> = points.iter().map(|r| r.0.as_str()).collect();
        modes.dedup();
        for (i, mode) in modes.iter().enumerate() {
            let color: RGBColor = colors[i % colors.len()];
            let mut curve: Vec<_> = points.iter().filter(|r| r.0 == *mode).collect();
            curve.sort_by_key(|r| r.2);
            chart
                .draw_series(LineSeries::new(curve.iter().map(|r| (r.4, r.3)), color.stroke_width(2)))?
                .label(*mode)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(curve.iter().map(|r| {
                EmptyElement::at((r.4, r.3))
                    + Circle::new((0, 0), 4, color.filled())
                    + Text::new(format!("c={}", r.2), (6, -14), ("sans-serif", 13))
            }))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    }
}
