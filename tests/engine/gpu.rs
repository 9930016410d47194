//! The model on a CUDA GPU: f32 hidden states match the CPU's, and bf16 sentence embeddings stay
//! within cosine 0.999 of the CPU's f32 ones. Ignored (and listed as ignored) in a build without
//! the `cuda` feature; in a `cuda` build it needs a GPU and fails without one.

use crate::common;

use pipeserve::load::{LoadConfig, Loaded};
use pipeserve::model::{DTypeSpec, DeviceSpec, ModelInput, RawOutput};
use pipeserve::pipelines::feature_extraction::embed;
use pipeserve::pipelines::Pooling;

fn load(device: DeviceSpec, dtype: DTypeSpec) -> Loaded {
    common::loaded(&LoadConfig { device, dtype, ..common::load_config("all-MiniLM-L6-v2") })
}

/// Mean-pooled, L2-normalized embedding per input, from raw per-token hidden states.
fn embeddings(loaded: &Loaded, texts: &[&str]) -> Vec<Vec<f32>> {
    let encoded: Vec<_> = texts.iter().map(|t| loaded.tokenizer.encode(t, false).unwrap()).collect();
    let inputs: Vec<ModelInput<'_>> =
        encoded.iter().map(|e| ModelInput { ids: &e.ids, type_ids: &e.type_ids }).collect();
    loaded
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
#[cfg_attr(not(feature = "cuda"), ignore = "needs the cuda feature and a GPU")]
fn cuda_matches_cpu_in_f32_and_bf16() {
    let gpu = load(DeviceSpec::Cuda(0), DTypeSpec::F32);
    let cpu = load(DeviceSpec::Cpu, DTypeSpec::F32);
    let reference = embeddings(&cpu, &TEXTS);
    for (a, b) in reference.iter().zip(embeddings(&gpu, &TEXTS)) {
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "f32 on cuda:0 differs from cpu by {diff}");
    }
    drop(gpu);
    let bf16 = load(DeviceSpec::Cuda(0), DTypeSpec::BF16);
    for (a, b) in reference.iter().zip(embeddings(&bf16, &TEXTS)) {
        let cos = cosine(a, &b);
        assert!(cos >= 0.999, "bf16 on cuda:0: cosine {cos} to f32");
    }
}
