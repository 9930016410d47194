//! int8 against f32 on long inputs, side by side in one run: the model step (no HTTP, no
//! tokenizer) of all-MiniLM-L6-v2 for every GEMM this build has, in f32 and in int8, on batches
//! of ~130-token and ~500-token inputs (about the server's 2048-token batch budget). Candidates
//! take turns for several rounds so that machine noise hits all of them alike; each cell is the
//! best round. Prints tokens/s, the ratio to the best f32 candidate, and the lowest cosine of
//! each candidate's hidden states to candle f32's.
//!
//! `eval "$(scripts/onednn.sh)" && eval "$(scripts/mkl.sh)" &&
//!  cargo bench --features dnnl --bench int8` (any subset of the features, never `mkl` with
//! `openblas`: build.rs refuses). One library per build measures cleanest: their thread pools
//! spin against each other between calls.
//! Environment: `BENCH_SECONDS` per turn (default 2), `BENCH_ROUNDS` (default 3), `BENCH_MODEL`.

#[path = "support/inputs.rs"]
mod inputs;
#[path = "support/timing.rs"]
mod timing;

/// The server's allocator (src/main.rs), so the model step is measured as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use pipeserve::model::files::ModelFiles;
use pipeserve::model::gemm::{self, Backend, GemmChoice, Quantize};
use pipeserve::model::{Model, ModelInput, ModelOptions, RawOutput};

fn choice(b: Backend) -> GemmChoice {
    match b {
        Backend::Candle => GemmChoice::Candle,
        Backend::Mkl => GemmChoice::Mkl,
        Backend::OpenBlas => GemmChoice::OpenBlas,
        Backend::Dnnl => GemmChoice::Dnnl,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn lowest_cosine(a: &[RawOutput], b: &[RawOutput]) -> f32 {
    let mut lowest = 1f32;
    for (x, y) in a.iter().zip(b) {
        let (RawOutput::Hidden(x), RawOutput::Hidden(y)) = (x, y) else { panic!("hidden states") };
        for (p, q) in x.iter_rows().zip(y.iter_rows()) {
            lowest = lowest.min(cosine(p, q));
        }
    }
    lowest
}

fn main() {
    pipeserve::threads::configure(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    gemm::set_threads(threads);
    let model: String = timing::env("BENCH_MODEL", "models/all-MiniLM-L6-v2".into());
    let seconds: f64 = timing::env("BENCH_SECONDS", 2.0);
    let rounds: usize = timing::env("BENCH_ROUNDS", 3);
    let files = ModelFiles::locate(std::path::Path::new(&model)).expect("run python3 scripts/fetch_models.py");
    let mut candidates: Vec<(String, Model)> = Vec::new();
    for quantize in [Quantize::None, Quantize::Int8] {
        for backend in Backend::compiled() {
            if quantize == Quantize::Int8 && !backend.has_int8() {
                continue;
            }
            let options = ModelOptions { gemm: choice(backend), quantize, ..ModelOptions::default() };
            let (m, _) = Model::load_with_options(&files, None, &options).expect("load");
            let kind = match (quantize, backend) {
                (Quantize::Int8, b) => format!("int8 ({b})"),
                (_, Backend::Candle) => {
                    format!("f32 (candle: {})", if cfg!(feature = "mkl") { "mkl" } else { "gemm crate" })
                }
                (_, b) => format!("f32 ({b})"),
            };
            candidates.push((kind, m));
        }
    }
    println!("{threads} threads, {seconds} s per turn, best of {rounds} rounds; model {model}\n");
    for (tokens, batch) in [(130usize, 16usize), (500, 4)] {
        let ids = inputs::synthetic_ids(batch, tokens);
        let types = vec![0u32; tokens];
        let inputs: Vec<ModelInput<'_>> = ids.iter().map(|i| ModelInput { ids: i, type_ids: &types }).collect();
        let reference = candidates[0].1.forward(&inputs).expect("forward");
        let mut best = vec![0f64; candidates.len()];
        for _ in 0..rounds {
            for (i, (_, m)) in candidates.iter().enumerate() {
                let rate =
                    (batch * tokens) as f64 / timing::per_call(seconds, || drop(m.forward(&inputs).expect("forward")));
                best[i] = best[i].max(rate);
            }
        }
        let best_f32 = candidates
            .iter()
            .zip(&best)
            .filter(|((name, _), _)| name.starts_with("f32"))
            .map(|(_, &r)| r)
            .fold(0f64, f64::max);
        println!("{batch} × {tokens} tokens:\n");
        println!("| linear layers | tokens/s | vs best f32 | lowest token cosine to f32 |");
        println!("|---|---:|---:|---:|");
        for ((name, m), rate) in candidates.iter().zip(&best) {
            let cos = lowest_cosine(&reference, &m.forward(&inputs).expect("forward"));
            println!("| {name} | {rate:.0} | {:.2}× | {cos:.5} |", rate / best_f32);
        }
        println!();
    }
}
