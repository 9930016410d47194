//! The bf16 quality gate (`--dtype bf16`, what `--dtype auto` serves on a CPU with AMX-BF16 or
//! AVX512-BF16 in the README's build, `--features mkl,dnnl`): on every golden input, the mean-pooled
//! embedding within cosine 0.9999 of f32's, and f32's labels and fill-mask top-1 (ties under the
//! margins below exempt, counted and printed). Where the CPU or the build has no bf16 GEMM the gate
//! is ignored (listed by the test runner, never passed) and bf16 must be refused with the reason. CI
//! runs it in the `mkl,dnnl` step of `.ci/run`.

use pipeserve::model::{DTypeSpec, LoadError, ModelOptions};

use crate::quality::{load, model_dir, Gate};

/// Sequence labels and fill-mask top-1 are exempt where f32's top-1 leads by less than this (in
/// logits): the tiny random-init checkpoints have near-ties that no reduced precision can keep.
const LABEL_TIE: f32 = 0.01;
/// Token labels: as the int8 gate (the tiny NER checkpoint has tokens whose two best labels are
/// 0.008-0.054 apart).
const TOKEN_TIE: f32 = 0.1;

fn bf16() -> ModelOptions {
    ModelOptions { dtype: DTypeSpec::BF16, ..ModelOptions::default() }
}

#[test]
#[cfg_attr(
    not(all(feature = "mkl", pipeserve_host_bf16)),
    ignore = "needs a CPU with AMX-BF16 or AVX512-BF16 and --features mkl"
)]
fn bf16_matches_f32_on_every_golden_input() {
    let gate =
        Gate { min_cosine: 0.9999, pooled: true, sequence_tie: LABEL_TIE, token_tie: TOKEN_TIE, mask_tie: LABEL_TIE };
    gate.run(&bf16(), |name, reason| {
        // Only the architectures off the packed encoder refuse bf16 on the CPU.
        assert!(reason.contains("packed encoder"), "{name}: {reason}");
    });
}

#[test]
#[cfg_attr(all(any(feature = "mkl", feature = "dnnl"), pipeserve_host_bf16), ignore = "this CPU and build run bf16")]
fn bf16_without_a_bf16_cpu_or_gemm_is_refused_with_the_reason() {
    match load(&model_dir("all-MiniLM-L6-v2"), &bf16()) {
        Err(LoadError::Options(reason)) => {
            assert!(reason.contains("AVX512-BF16") || reason.contains("--features dnnl or mkl"), "{reason}")
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("bf16 loaded on a CPU or build without a bf16 GEMM"),
    }
}

#[test]
fn f16_on_the_cpu_is_refused() {
    let options = ModelOptions { dtype: DTypeSpec::F16, ..ModelOptions::default() };
    match load(&model_dir("all-MiniLM-L6-v2"), &options) {
        Err(LoadError::Options(reason)) => assert!(reason.contains("no fast CPU path"), "{reason}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("f16 loaded on the CPU"),
    }
}
