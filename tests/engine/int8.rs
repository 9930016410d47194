//! The int8 quality gate (`--quantize int8`): on every golden input (tests/fixtures/golden), the
//! int8 model's hidden states are within cosine 0.995 of the f32 model's, per token, and its
//! fill-mask top-1, sequence label and token labels are the f32 model's. Architectures without an
//! int8 path must refuse it at load with a clear error instead of silently running f32, and so
//! must a CPU without VNNI (AVX2's integer GEMM misses this gate: src/model/gemm). Where the CPU
//! that builds the tests has no VNNI the gate is ignored (listed by the runner, never passed) and
//! the refusal is tested instead.
//!
//! Self-contained on purpose: the model alone (`Model::load_with_options` + `Model::forward`), the
//! recorded input ids and the tokenizer's special ids; whichever backend this build picks for
//! int8 (oneDNN, else MKL) is the one under test. The default build has no integer GEMM: there
//! the gate is skipped and int8 must be refused. CI runs it with
//! `eval "$(scripts/onednn.sh)" && cargo test --features dnnl --test engine int8`.

use pipeserve::model::gemm::{Backend, Quantize};
use pipeserve::model::{LoadError, ModelInput, ModelOptions, RawOutput};

use crate::quality::{cosine, load, model_dir, Gate};

/// Hidden states per token within this cosine of f32's.
const MIN_COSINE: f32 = 0.995;
/// Token labels are compared where f32's top-1 leads its runner-up by at least this much (in
/// logits): the tiny NER checkpoint is random-init and has tokens whose two best labels differ by
/// 0.008-0.054, which int8 swapped (oneDNN: one token at 0.054; Q8_0: three). Fill-mask top-1 and
/// sequence labels are compared everywhere, with no allowance.
const TOKEN_TIE: f32 = 0.1;

fn int8() -> ModelOptions {
    ModelOptions { quantize: Quantize::Int8, dtype: pipeserve::model::DTypeSpec::F32, ..ModelOptions::default() }
}

/// Whether this build has an integer GEMM (`--features dnnl` or `mkl`); without one, int8 must be
/// refused with the rebuild hint and the quality gate cannot run.
fn has_int8() -> bool {
    Backend::compiled().iter().any(|b| b.has_int8())
}

#[test]
#[cfg_attr(any(feature = "dnnl", feature = "mkl"), ignore = "this build has an integer GEMM")]
fn int8_without_an_integer_gemm_is_refused_with_a_hint() {
    assert!(!has_int8());
    match load(&model_dir("tiny-bert-sentiment"), &int8()) {
        Err(LoadError::Options(reason)) => assert!(reason.contains("--features dnnl"), "{reason}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("int8 loaded without an integer GEMM"),
    }
}

#[test]
#[cfg_attr(
    not(all(any(feature = "dnnl", feature = "mkl"), not(pipeserve_host_vnni))),
    ignore = "needs a CPU without VNNI and an integer GEMM (--features dnnl or mkl): here int8 runs"
)]
fn int8_without_vnni_is_refused_with_the_reason() {
    match load(&model_dir("all-MiniLM-L6-v2"), &int8()) {
        Err(LoadError::Options(reason)) => assert!(reason.contains("AVX-512 VNNI or AVX-VNNI"), "{reason}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("int8 loaded on a CPU without VNNI"),
    }
}

#[test]
#[cfg_attr(
    not(all(any(feature = "dnnl", feature = "mkl"), pipeserve_host_vnni)),
    ignore = "needs a CPU with AVX-512 VNNI or AVX-VNNI and an integer GEMM (--features dnnl or mkl)"
)]
fn int8_matches_f32_on_every_golden_input() {
    assert!(has_int8());
    let gate = Gate { min_cosine: MIN_COSINE, pooled: false, sequence_tie: 0.0, token_tie: TOKEN_TIE, mask_tie: 0.0 };
    gate.run(&int8(), |name, reason| {
        // Only the encoders that candle-transformers provides lack an int8 path.
        assert!(reason.contains("--quantize int8 supports"), "{name}: {reason}");
    });
}

#[test]
#[cfg_attr(
    not(all(any(feature = "dnnl", feature = "mkl"), pipeserve_host_vnni)),
    ignore = "needs a CPU with AVX-512 VNNI or AVX-VNNI and an integer GEMM (--features dnnl or mkl)"
)]
fn int8_batches_match_single_inputs() {
    // Per-row activation scales: an input's int8 result must not depend on its batch-mates.
    let model = load(&model_dir("all-MiniLM-L6-v2"), &int8()).unwrap();
    let (short, long): (Vec<u32>, Vec<u32>) = (vec![101, 7592, 102], (0..40).map(|i| 2000 + i * 37).collect());
    let types = vec![0u32; 40];
    let alone = model.forward(&[ModelInput { ids: &short, type_ids: &types[..3] }]).unwrap();
    let batched = model
        .forward(&[ModelInput { ids: &short, type_ids: &types[..3] }, ModelInput { ids: &long, type_ids: &types }])
        .unwrap();
    let (RawOutput::Hidden(a), RawOutput::Hidden(b)) = (&alone[0], &batched[0]) else { panic!("hidden states") };
    for (x, y) in a.iter_rows().zip(b.iter_rows()) {
        assert!(cosine(x, y) > 0.9999, "batch-mates changed an input's states");
    }
}
