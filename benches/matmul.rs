//! The ceiling: this machine's matmul throughput through candle (whatever backend this build uses:
//! the `gemm` crate by default, Intel MKL with `--features mkl`), and the model's tokens/s ceiling
//! that follows from it with the FLOPs per token counted from `config.json`.
//!
//! `cargo bench --bench matmul [--features mkl]`. Environment: `BENCH_SECONDS` per cell (default 2),
//! `BENCH_MODEL` (default models/all-MiniLM-L6-v2), `BENCH_DTYPES` (default "f32,bf16,f16").

use candle_core::DType;

#[path = "support/ceiling.rs"]
mod ceiling;

use ceiling::{flops_per_token, gflops};

fn main() {
    // The thread settings the server uses (src/threads.rs), before candle starts any thread.
    pipeserve::threads::configure(0);
    let model = std::env::var("BENCH_MODEL").unwrap_or_else(|_| "models/all-MiniLM-L6-v2".into());
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let dtypes = std::env::var("BENCH_DTYPES").unwrap_or_else(|_| "f32,bf16,f16".into());
    let config = ceiling::read_config(&model);
    let backend = if cfg!(feature = "mkl") { "mkl" } else { "gemm crate" };
    let threads = std::env::var("OMP_NUM_THREADS").or_else(|_| std::env::var("RAYON_NUM_THREADS")).unwrap_or_default();
    println!("candle CPU matmul ({backend}), {threads} math threads, {seconds} s per cell\n");
    println!("| dtype | m × k × n | GFLOP/s |");
    println!("|---|---|---:|");
    // Square, then the model's own shapes at 32 × 128 tokens: QKV/out projection, FFN up, FFN down.
    let mut shapes = vec![(2048, 2048, 2048)];
    shapes.extend(ceiling::MODEL_SHAPES);
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
