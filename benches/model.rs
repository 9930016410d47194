//! Micro-benchmark of the model step alone (no HTTP, no tokenizer): tokens/s of all-MiniLM-L6-v2's
//! forward pass for batch 1, 8, 32 at 16 and 128 tokens.
//!
//! `cargo bench --bench model` (after `python3 scripts/fetch_models.py`). Environment:
//! `BENCH_SECONDS` (per cell, default 3), `BENCH_MODEL` (default models/all-MiniLM-L6-v2).

use std::time::{Duration, Instant};

use pipeserve::engine::{Engine, EngineConfig};
use pipeserve::model::{DTypeSpec, DeviceSpec, ModelInput};

fn main() {
    let model = std::env::var("BENCH_MODEL").unwrap_or_else(|_| "models/all-MiniLM-L6-v2".into());
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let dtype: DTypeSpec = std::env::var("BENCH_DTYPE").ok().and_then(|s| s.parse().ok()).unwrap_or_default();
    let device: DeviceSpec = std::env::var("BENCH_DEVICE").ok().and_then(|s| s.parse().ok()).unwrap_or_default();
    let engine = Engine::load(&EngineConfig { model: model.clone(), task: None, device, dtype, max_input_tokens: None })
        .unwrap_or_else(|e| panic!("{e} (run python3 scripts/fetch_models.py)"));
    println!("model step of {model} on {device} ({dtype}), {seconds} s per cell\n");
    println!("| batch | tokens/input | batches/s | tokens/s | ms/batch |");
    println!("|---:|---:|---:|---:|---:|");
    for tokens in [16usize, 128] {
        for batch in [1usize, 8, 32] {
            // [CLS] w w ... [SEP] with ordinary word ids, exactly `tokens` long.
            let ids: Vec<Vec<u32>> = (0..batch)
                .map(|b| {
                    let mut v = vec![101u32];
                    v.extend((0..tokens - 2).map(|i| 2000 + ((i * 7 + b * 13) % 5000) as u32));
                    v.push(102);
                    v
                })
                .collect();
            let types = vec![0u32; tokens];
            let inputs: Vec<ModelInput<'_>> = ids.iter().map(|i| ModelInput { ids: i, type_ids: &types }).collect();
            engine.model.forward(&inputs).unwrap();
            let started = Instant::now();
            let mut runs = 0u32;
            while started.elapsed() < Duration::from_secs_f64(seconds) || runs < 3 {
                engine.model.forward(&inputs).unwrap();
                runs += 1;
            }
            let elapsed = started.elapsed().as_secs_f64();
            let per_second = f64::from(runs) / elapsed;
            println!(
                "| {batch} | {tokens} | {per_second:.1} | {:.0} | {:.2} |",
                per_second * (batch * tokens) as f64,
                1000.0 / per_second
            );
        }
    }
}
