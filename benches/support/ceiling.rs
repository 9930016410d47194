//! The model's tokens/s ceiling: candle's f32 matmul throughput on this machine and the FLOPs of
//! one token from `config.json`. Shared by the matmul and load benches (`#[path]` module; each
//! uses part of it, and declares `timing` beside it).
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};

/// FLOPs of one token through a BERT encoder at sequence length `seq` (multiply-add = 2 FLOPs):
/// Q, K, V and output projections, the two feed-forward matmuls, and attention scores and context.
pub fn flops_per_token(config: &serde_json::Value, seq: usize) -> f64 {
    let get = |k: &str| config[k].as_u64().unwrap_or(0) as f64;
    let (layers, hidden, inner) = (get("num_hidden_layers"), get("hidden_size"), get("intermediate_size"));
    layers * (2.0 * (4.0 * hidden * hidden + 2.0 * hidden * inner) + 2.0 * 2.0 * seq as f64 * hidden)
}

/// GFLOP/s of an `m × k` by `k × n` matmul in `dtype` over about `seconds`; None where this build
/// has no matmul for the dtype.
pub fn gflops(m: usize, k: usize, n: usize, dtype: DType, seconds: f64) -> Option<f64> {
    let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).ok()?.to_dtype(dtype).ok()?;
    // Weights as the model holds them (out × in), used transposed, as candle-nn's Linear does.
    let b = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).ok()?.to_dtype(dtype).ok()?;
    let b = b.t().ok()?;
    a.matmul(&b).ok()?; // this build has a matmul in `dtype`
    let seconds = crate::timing::per_call(seconds, || drop(a.matmul(&b).expect("matmul")));
    Some(2.0 * (m * k * n) as f64 / seconds / 1e9)
}

/// The model's own matmul shapes at 32 × 128 tokens: QKV/out projection, FFN up, FFN down.
pub const MODEL_SHAPES: [(usize, usize, usize); 3] = [(4096, 384, 384), (4096, 384, 1536), (4096, 1536, 384)];

/// The best f32 rate over [`MODEL_SHAPES`].
pub fn f32_peak(seconds_per_shape: f64) -> f64 {
    MODEL_SHAPES.iter().filter_map(|&(m, k, n)| gflops(m, k, n, DType::F32, seconds_per_shape)).fold(0.0, f64::max)
}

pub fn read_config(model: &str) -> serde_json::Value {
    std::fs::read(format!("{model}/config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("no {model}/config.json (run python3 scripts/fetch_models.py)"))
}
