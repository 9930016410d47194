//! The ceiling, and which GEMM reaches it: every GEMM this build has, on the same shapes and
//! threads, side by side in one run — candle's matmul (the `gemm` crate by default, MKL with
//! `--features mkl`), the native libraries behind features (`mkl`, `openblas`, `dnnl`; f32
//! `sgemm` and the u8 × i8 → i32 GEMMs), candle's Q8_0 `QMatMul`, and the int8 linear layer as
//! the model runs it (quantize the activations, integer GEMM, dequantize with the bias). Then the
//! model's tokens/s ceiling from the best f32 rate and the FLOPs per token of `config.json`.
//!
//! `eval "$(scripts/onednn.sh)" && eval "$(scripts/mkl.sh)" &&
//!  cargo bench --features mkl,dnnl --bench matmul`, then `--features openblas` (any subset, but
//! never `mkl` with `openblas`: both define `cblas_sgemm` and the linker keeps one; build.rs refuses).
//! Environment: `BENCH_SECONDS` per cell (default 1), `BENCH_MODEL` (default
//! models/all-MiniLM-L6-v2), `BENCH_DTYPES` (candle's matmul in these dtypes, default "f32";
//! add bf16/f16 to see candle's half-precision paths).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use pipeserve::model::gemm::{self, Backend, Dense, LinearOptions, Quantize};

#[path = "support/ceiling.rs"]
mod ceiling;
#[path = "support/timing.rs"]
mod timing;

use ceiling::{flops_per_token, gflops};

/// Runs `f` for about `seconds` (at least 3 times, after one warm-up); GFLOP/s (or GOP/s) of a
/// `2 · m · k · n` operation.
fn rate(m: usize, k: usize, n: usize, seconds: f64, f: impl FnMut()) -> f64 {
    2.0 * (m * k * n) as f64 / timing::per_call(seconds, f) / 1e9
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    // A cheap deterministic generator; the values only need a realistic spread.
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `c = a · bᵀ` with the `gemm` crate (candle's default CPU matmul) on its own rayon pool of
/// `threads`, so it is measured the same way in a `mkl` build (whose global pool is 1 thread).
#[allow(unsafe_code)] // the gemm crate has only an unsafe API; the strides describe the slices.
fn gemm_crate(
    pool: &rayon::ThreadPool,
    threads: usize,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n);
    pool.install(|| {
        // SAFETY: a is m × k (row stride k), bᵀ is k × n read from b (n × k) with column stride k,
        // c is m × n (row stride n); all lengths checked above.
        unsafe {
            ::gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                k as isize,
                1,
                0f32,
                1f32,
                false,
                false,
                false,
                ::gemm::Parallelism::Rayon(threads),
            )
        }
    });
}

fn main() {
    // The thread settings the server uses (src/threads.rs), before any library starts a thread.
    pipeserve::threads::configure(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    gemm::set_threads(threads);
    let model: String = timing::env("BENCH_MODEL", "models/all-MiniLM-L6-v2".into());
    let seconds: f64 = timing::env("BENCH_SECONDS", 1.0);
    let dtypes: String = timing::env("BENCH_DTYPES", "f32".into());
    let config = ceiling::read_config(&model);
    let candle = if cfg!(feature = "mkl") { "mkl" } else { "gemm crate" };
    let cpu = gemm::Cpu::detect();
    println!("{threads} threads, {seconds} s per cell; CPU: {cpu:?}");
    println!(
        "auto picks: f32 {:?}, int8 {:?}\n",
        LinearOptions::resolve(Default::default(), Quantize::None),
        LinearOptions::resolve(Default::default(), Quantize::Int8)
    );
    // Square, then the model's own shapes at 32 × 128 tokens: QKV/out projection, FFN up, FFN down.
    let mut shapes = vec![(2048, 2048, 2048)];
    shapes.extend(ceiling::MODEL_SHAPES);
    let header: Vec<String> = shapes.iter().map(|(m, k, n)| format!("{m}×{k}×{n}")).collect();
    println!("| GEMM (GFLOP/s; int8: GOP/s) | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(shapes.len()));
    let mut peak = 0f64;
    let mut row = |name: String, cells: Vec<f64>, f32_row: bool| {
        if f32_row {
            peak = cells.iter().copied().fold(peak, f64::max);
        }
        let cells: Vec<String> = cells.iter().map(|g| format!("{g:.1}")).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    for dtype in dtypes.split(',') {
        let dt = match dtype.trim() {
            "f32" => DType::F32,
            "bf16" => DType::BF16,
            "f16" => DType::F16,
            other => panic!("unknown dtype {other}"),
        };
        let cells = shapes.iter().map(|&(m, k, n)| gflops(m, k, n, dt, seconds).unwrap_or(f64::NAN)).collect();
        row(format!("candle matmul ({candle}), {dtype}"), cells, dt == DType::F32);
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool");
    let cells = shapes
        .iter()
        .map(|&(m, k, n)| {
            let (a, b) = (values(m * k, 1), values(n * k, 2));
            let mut c = vec![0f32; m * n];
            rate(m, k, n, seconds, || gemm_crate(&pool, threads, (m, n, k), &a, &b, &mut c))
        })
        .collect();
    row("gemm crate 0.19 (candle's default), f32".into(), cells, true);
    for backend in Backend::compiled().into_iter().filter(|&b| b != Backend::Candle) {
        let cells = shapes
            .iter()
            .map(|&(m, k, n)| {
                let (a, b) = (values(m * k, 1), values(n * k, 2));
                let mut c = vec![0f32; m * n];
                rate(m, k, n, seconds, || gemm::sgemm(backend, (m, n, k), &a, &b, 0.0, &mut c))
            })
            .collect();
        row(format!("{backend} sgemm, f32"), cells, true);
    }
    // int8: the bare integer GEMMs, then the layers as the model runs them (with (de)quantization).
    for backend in Backend::compiled().into_iter().filter(|b| b.has_int8()) {
        let cells = shapes
            .iter()
            .map(|&(m, k, n)| {
                let a: Vec<u8> = values(m * k, 3).iter().map(|v| (v * 127.0 + 128.0) as u8).collect();
                let b: Vec<i8> = values(n * k, 4).iter().map(|v| (v * 127.0) as i8).collect();
                let mut c = vec![0i32; m * n];
                rate(m, k, n, seconds, || gemm::gemm_u8s8s32(backend, (m, n, k), &a, &b, &mut c))
            })
            .collect();
        row(format!("{backend} u8×s8→s32 GEMM alone"), cells, false);
    }
    let dev = Device::Cpu;
    for backend in Backend::compiled().into_iter().filter(|b| b.has_int8()) {
        let cells = shapes
            .iter()
            .map(|&(m, k, n)| {
                let x = Tensor::from_vec(values(m * k, 5), (m, k), &dev).expect("x");
                let w = Tensor::from_vec(values(n * k, 6), (n, k), &dev).expect("w");
                let linear = Linear::new(w, Some(Tensor::zeros(n, DType::F32, &dev).expect("bias")));
                let options = LinearOptions { backend, quantize: Quantize::Int8 };
                let dense = Dense::new(linear, &options).expect("int8 layer");
                rate(m, k, n, seconds, || {
                    dense.forward(&x).expect("forward");
                })
            })
            .collect();
        row(format!("{backend} int8 layer (quantize + GEMM + dequantize)"), cells, false);
    }
    // candle's Q8_0 QMatMul (llama.cpp's scheme, no native library), the int8 candidate rejected.
    let cells = shapes
        .iter()
        .map(|&(m, k, n)| {
            let x = Tensor::from_vec(values(m * k, 5), (m, k), &dev).expect("x");
            let w = Tensor::from_vec(values(n * k, 6), (n, k), &dev).expect("w");
            let q = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0).expect("q")).expect("q");
            rate(m, k, n, seconds, || {
                q.forward(&x).expect("forward");
            })
        })
        .collect();
    row("candle QMatMul Q8_0".into(), cells, false);
    for seq in [16usize, 128] {
        let per_token = flops_per_token(&config, seq);
        println!(
            "\nseq {seq}: {:.1} MFLOP/token; f32 ceiling at the best f32 rate ({peak:.1} GFLOP/s): {:.0} tokens/s",
            per_token / 1e6,
            peak * 1e9 / per_token
        );
    }
}
