//! Micro-benchmark of the model step alone (no HTTP, no tokenizer): tokens/s of all-MiniLM-L6-v2's
//! forward pass for batch 1, 8, 32 at 16 and 128 tokens.
//!
//! `cargo bench --bench model [--features mkl]` (after `python3 scripts/fetch_models.py`).
//! Environment: `BENCH_SECONDS` (per cell, default 3), `BENCH_MODEL` (default
//! models/all-MiniLM-L6-v2), `BENCH_BATCHES` (default "1,8,32"), `BENCH_TOKENS` (default "16,128"),
//! `BENCH_DTYPE` (f32, f16, bf16; for a dtype other than f32 the bench also prints the cosine of
//! its mean-pooled embeddings to f32's), `BENCH_DEVICE`, `BENCH_GEMM` (as `--gemm`, default auto;
//! `candle` runs the packed encoder on the `gemm` crate, `mkl` on MKL).

#[path = "support/inputs.rs"]
mod inputs;
#[path = "support/timing.rs"]
mod timing;

/// The server's allocator (src/main.rs), so the model step is measured as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use pipeserve::load::{self, LoadConfig};
use pipeserve::model::gemm::GemmChoice;
use pipeserve::model::{DTypeSpec, DeviceSpec, ModelInput, RawOutput};
use pipeserve::pipelines::feature_extraction::embed;
use pipeserve::pipelines::Pooling;
use timing::{env, list, per_call};

/// Mean-pooled, L2-normalized embeddings from per-token hidden states.
fn pooled(outputs: Vec<RawOutput>) -> Vec<Vec<f32>> {
    outputs
        .into_iter()
        .map(|out| {
            let RawOutput::Hidden(m) = out else { panic!("expected hidden states") };
            embed(&m, Pooling::Mean, true)
        })
        .collect()
}

fn main() {
    // The thread settings the server uses (src/threads.rs), before candle starts any thread.
    pipeserve::threads::configure(0);
    let model: String = env("BENCH_MODEL", "models/all-MiniLM-L6-v2".into());
    let seconds: f64 = env("BENCH_SECONDS", 3.0);
    let dtype: DTypeSpec = env("BENCH_DTYPE", DTypeSpec::default());
    let device: DeviceSpec = env("BENCH_DEVICE", DeviceSpec::default());
    let gemm: GemmChoice = env("BENCH_GEMM", GemmChoice::default());
    let load = |dtype| {
        load::load(&LoadConfig {
            model: model.clone(),
            hub: Default::default(),
            task: None,
            device,
            dtype,
            gemm,
            max_input_tokens: None,
            ..LoadConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e} (run python3 scripts/fetch_models.py)"))
    };
    // The worker runs each forward pass inside its instance's own rayon pool (src/worker): in the
    // `mkl` build the global pool has one thread, so the bench must install the same pool.
    let threads = pipeserve::threads::pool_threads(pipeserve::threads::per_instance(0, 1, 0));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("math pool");
    let engine = load(dtype);
    let reference = (dtype != DTypeSpec::F32).then(|| load(DTypeSpec::F32));
    println!("--gemm {gemm}: {}, {threads} math threads", engine.meta.gemm);
    println!("model step of {model} on {device} ({dtype}), {seconds} s per cell\n");
    println!("| batch | tokens/input | batches/s | tokens/s | ms/batch |");
    println!("|---:|---:|---:|---:|---:|");
    let mut worst_cosine = 1f32;
    for tokens in list("BENCH_TOKENS", "16,128") {
        for batch in list("BENCH_BATCHES", "1,8,32") {
            let ids = inputs::synthetic_ids(batch, tokens);
            let types = vec![0u32; tokens];
            let inputs: Vec<ModelInput<'_>> = ids.iter().map(|i| ModelInput { ids: i, type_ids: &types }).collect();
            let first = pool.install(|| engine.model.forward(&inputs).unwrap());
            if let Some(reference) = &reference {
                let want = pooled(pool.install(|| reference.model.forward(&inputs).unwrap()));
                for (a, b) in want.iter().zip(pooled(first)) {
                    worst_cosine = worst_cosine.min(a.iter().zip(&b).map(|(x, y)| x * y).sum());
                }
            }
            let per_second = 1.0 / per_call(seconds, || drop(pool.install(|| engine.model.forward(&inputs).unwrap())));
            println!(
                "| {batch} | {tokens} | {per_second:.1} | {:.0} | {:.2} |",
                per_second * (batch * tokens) as f64,
                1000.0 / per_second
            );
        }
    }
    if reference.is_some() {
        println!("\nlowest cosine of {dtype} mean-pooled embeddings to f32's: {worst_cosine:.6}");
    }
}
