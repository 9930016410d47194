//! The model on a CUDA GPU: f32 hidden states match the CPU's, and bf16 sentence embeddings stay
//! within cosine 0.999 of the CPU's f32 ones. Skips cleanly (passes, with a note on stderr) in a
//! build without the `cuda` feature or on a machine without a GPU.

use pipeserve::engine::{Engine, EngineConfig};
use pipeserve::model::{DTypeSpec, DeviceSpec, ModelInput, RawOutput};
use pipeserve::pipelines::feature_extraction::embed;
use pipeserve::pipelines::{Params, Pooling};

const MODEL: &str = "models/all-MiniLM-L6-v2";

fn load(device: DeviceSpec, dtype: DTypeSpec) -> Option<Engine> {
    let config = EngineConfig { model: MODEL.into(), task: None, device, dtype, max_input_tokens: None };
    match Engine::load(&config) {
        Ok(engine) => Some(engine),
        Err(e) if device != DeviceSpec::Cpu => {
            eprintln!("skipping: no usable GPU ({e})");
            None
        }
        Err(e) => panic!("{e} (run python3 scripts/fetch_models.py)"),
    }
}

/// Mean-pooled, L2-normalized embedding per input, from raw per-token hidden states.
fn embeddings(engine: &Engine, texts: &[&str]) -> Vec<Vec<f32>> {
    let encoded: Vec<_> = texts.iter().map(|t| engine.prepare(t, &Params::default()).unwrap()).collect();
    let inputs: Vec<ModelInput<'_>> = encoded.iter().map(|e| ModelInput { ids: &e.ids, type_ids: &e.type_ids }).collect();
    engine
        .model
        .forward(&inputs)
        .unwrap()
        .into_iter()
        .map(|out| {
            let RawOutput::Hidden(m) = out else { panic!("expected hidden states") };
            embed(&m, Pooling::Mean, true)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const TEXTS: [&str; 3] = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "Serving encoder models well means batching requests dynamically while keeping latency low.",
];

#[test]
fn cuda_matches_cpu_in_f32_and_bf16() {
    if !cfg!(feature = "cuda") {
        eprintln!("skipping: built without the cuda feature");
        return;
    }
    if !std::path::Path::new(MODEL).exists() {
        eprintln!("skipping: {MODEL} missing (run python3 scripts/fetch_models.py)");
        return;
    }
    let Some(gpu) = load(DeviceSpec::Cuda(0), DTypeSpec::F32) else { return };
    let cpu = load(DeviceSpec::Cpu, DTypeSpec::F32).unwrap();
    let reference = embeddings(&cpu, &TEXTS);
    for (a, b) in reference.iter().zip(embeddings(&gpu, &TEXTS)) {
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "f32 on cuda:0 differs from cpu by {diff}");
    }
    drop(gpu);
    let bf16 = load(DeviceSpec::Cuda(0), DTypeSpec::BF16).unwrap();
    for (a, b) in reference.iter().zip(embeddings(&bf16, &TEXTS)) {
        let cos = cosine(a, &b);
        assert!(cos >= 0.999, "bf16 on cuda:0: cosine {cos} to f32");
    }
}
