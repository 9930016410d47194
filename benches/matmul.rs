//! The ceiling: this machine's matmul throughput through candle (whatever backend this build uses:
//! the `gemm` crate by default, Intel MKL with `--features mkl`), and the model's tokens/s ceiling
//! that follows from it with the FLOPs per token counted from `config.json`.
//!
//! `cargo bench --bench matmul [--features mkl]`. Environment: `BENCH_SECONDS` per cell (default 2),
//! `BENCH_MODEL` (default models/all-MiniLM-L6-v2), `BENCH_DTYPES` (default "f32,bf16,f16").

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

/// FLOPs of one token through a BERT encoder at sequence length `seq` (multiply-add = 2 FLOPs):
/// Q, K, V and output projections, the two feed-forward matmuls, and attention scores and context.
fn flops_per_token(config: &serde_json::Value, seq: usize) -> f64 {
    let get = |k: &str| config[k].as_u64().unwrap_or(0) as f64;
    let (layers, hidden, inner) = (get("num_hidden_layers"), get("hidden_size"), get("intermediate_size"));
    layers * (2.0 * (4.0 * hidden * hidden + 2.0 * hidden * inner) + 2.0 * 2.0 * seq as f64 * hidden)
}

fn gflops(m: usize, k: usize, n: usize, dtype: DType, seconds: f64) -> Option<f64> {
    let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).ok()?.to_dtype(dtype).ok()?;
    // Weights as the model holds them (out × in), used transposed, as candle-nn's Linear does.
    let b = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).ok()?.to_dtype(dtype).ok()?;
    let b = b.t().ok()?;
    a.matmul(&b).ok()?; // warm-up; None where this build has no matmul for the dtype
    let started = Instant::now();
    let mut runs = 0u32;
    while started.elapsed() < Duration::from_secs_f64(seconds) || runs < 3 {
        a.matmul(&b).ok()?;
        runs += 1;
    }
    Some(2.0 * (m * k * n) as f64 * f64::from(runs) / started.elapsed().as_secs_f64() / 1e9)
}

fn main() {
    // The thread settings the server uses (src/threads.rs), before candle starts any thread.
    pipeserve::threads::configure(0);
    let model = std::env::var("BENCH_MODEL").unwrap_or_else(|_| "models/all-MiniLM-L6-v2".into());
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let dtypes = std::env::var("BENCH_DTYPES").unwrap_or_else(|_| "f32,bf16,f16".into());
    let config: serde_json::Value = std::fs::read(format!("{model}/config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("no {model}/config.json (run python3 scripts/fetch_models.py)"));
    let backend = if cfg!(feature = "mkl") { "mkl" } else { "gemm crate" };
    let threads = std::env::var("OMP_NUM_THREADS").or_else(|_| std::env::var("RAYON_NUM_THREADS")).unwrap_or_default();
    println!("candle CPU matmul ({backend}), {threads} math threads, {seconds} s per cell\n");
    println!("| dtype | m × k × n | GFLOP/s |");
    println!("|---|---|---:|");
    // Square, then the model's own shapes at 32 × 128 tokens: QKV/out projection, FFN up, FFN down.
    let shapes = [(2048, 2048, 2048), (4096, 384, 384), (4096, 384, 1536), (4096, 1536, 384)];
    let mut peak = 0f64;
    for dtype in dtypes.split(',') {
        let dt = match dtype.trim() {
            "f32" => DType::F32,
            "bf16" => DType::BF16,
            "f16" => DType::F16,
            other => panic!("unknown dtype {other}"),
        };
        for &(m, k, n) in &shapes {
            match gflops(m, k, n, dt, seconds) {
                Some(g) => {
                    if dt == DType::F32 {
                        peak = peak.max(g);
                    }
                    println!("| {dtype} | {m} × {k} × {n} | {g:.1} |");
                }
                None => println!("| {dtype} | {m} × {k} × {n} | unsupported in this build |"),
            }
        }
    }
    for seq in [16usize, 128] {
        let per_token = flops_per_token(&config, seq);
        println!(
            "\nseq {seq}: {:.1} MFLOP/token; f32 ceiling at the best f32 rate ({peak:.1} GFLOP/s): {:.0} tokens/s",
            per_token / 1e6,
            peak * 1e9 / per_token
        );
    }
}
