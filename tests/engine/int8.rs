//! The int8 quality gate (`--quantize int8`): on every golden input (tests/fixtures/golden), the
//! int8 model's hidden states are within cosine 0.995 of the f32 model's, per token, and its
//! fill-mask top-1, sequence label and token labels are the f32 model's. Architectures without an
//! int8 path must refuse it at load with a clear error instead of silently running f32.
//!
//! Self-contained on purpose: the model alone (`Model::load_with_options` + `Model::forward`), the
//! recorded input ids and the tokenizer's special ids; whichever backend this build picks for
//! int8 (oneDNN, else MKL) is the one under test. The default build has no integer GEMM: there
//! the gate is skipped and int8 must be refused. CI runs it with
//! `scripts/native-gemm.sh && cargo test --features dnnl --test engine int8`.

use std::path::{Path, PathBuf};

use pipeserve::model::files::ModelFiles;
use pipeserve::model::gemm::{Backend, Quantize};
use pipeserve::model::{LoadError, Model, ModelInput, ModelOptions, RawOutput};
use serde_json::Value;

const MIN_COSINE: f32 = 0.995;
/// Token labels are compared where f32's top-1 leads its runner-up by at least this much (in
/// logits): the tiny NER checkpoint is random-init and has tokens whose two best labels differ by
/// 0.008-0.054, which int8 swapped (oneDNN: one token at 0.054; Q8_0: three). Fill-mask top-1 and
/// sequence labels are compared everywhere, with no allowance.
const TOKEN_TIE: f32 = 0.1;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir(name: &str) -> PathBuf {
    let fetched = root().join("models").join(name);
    if fetched.is_dir() {
        return fetched;
    }
    let committed = root().join("tests/fixtures/models").join(name);
    assert!(committed.is_dir(), "model {name} is missing: run `python3 scripts/fetch_models.py` first");
    committed
}

fn load(dir: &Path, quantize: Quantize) -> Result<Model, LoadError> {
    let files = ModelFiles::locate(dir)?;
    let options = ModelOptions { quantize, ..ModelOptions::default() };
    let (mut model, _) = Model::load_with_options(&files, None, &options)?;
    // The ids the pipelines set from the tokenizer: padding and, for fill-mask, the mask.
    let tokenizer = dir.join("tokenizer.json");
    if tokenizer.is_file() {
        let tok = tokenizers::Tokenizer::from_file(&tokenizer).expect("tokenizer");
        let pad = tok.get_padding().map_or(0, |p| p.pad_id);
        let mask = ["[MASK]", "<mask>"].iter().find_map(|m| tok.token_to_id(m));
        model.set_special_ids(pad, mask);
    }
    Ok(model)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE)
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &x)| if x > best.1 { (i, x) } else { best }).0
}

/// How far f32's top-1 logit is ahead of its runner-up.
fn margin(v: &[f32]) -> f32 {
    let top = argmax(v);
    let second = v.iter().enumerate().filter(|&(i, _)| i != top).map(|(_, &x)| x).fold(f32::NEG_INFINITY, f32::max);
    v[top] - second
}

/// Compares one output; returns the lowest cosine seen (hidden states) and any failure.
fn compare(f32_out: &RawOutput, int8_out: &RawOutput, lowest: &mut f32) -> Option<String> {
    match (f32_out, int8_out) {
        (RawOutput::Hidden(a), RawOutput::Hidden(b)) => {
            let worst = a.iter_rows().zip(b.iter_rows()).map(|(x, y)| cosine(x, y)).fold(1f32, f32::min);
            *lowest = lowest.min(worst);
            (worst < MIN_COSINE).then(|| format!("a token's hidden state at cosine {worst:.5} < {MIN_COSINE}"))
        }
        (RawOutput::Logits(a), RawOutput::Logits(b)) => (argmax(a) != argmax(b))
            .then(|| format!("label {} instead of {} (f32 margin {:.4})", argmax(b), argmax(a), margin(a))),
        (RawOutput::TokenLogits(a), RawOutput::TokenLogits(b))
        | (RawOutput::MaskLogits(a), RawOutput::MaskLogits(b)) => {
            let tie = if matches!(f32_out, RawOutput::TokenLogits(_)) { TOKEN_TIE } else { 0.0 };
            a.iter_rows().zip(b.iter_rows()).enumerate().find_map(|(i, (x, y))| {
                (argmax(x) != argmax(y) && margin(x) >= tie).then(|| {
                    format!("row {i}: top-1 {} instead of {} (f32 margin {:.4})", argmax(y), argmax(x), margin(x))
                })
            })
        }
        _ => Some("output kinds differ".into()),
    }
}

/// Every golden fixture's model and input ids, the inputs grouped by model.
fn golden_inputs() -> Vec<(String, Vec<Vec<u32>>)> {
    let dir = root().join("tests/fixtures/golden");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut by_model: Vec<(String, Vec<Vec<u32>>)> = Vec::new();
    for path in paths {
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // The pipeline fixtures; the client and pair fixtures (other shapes) are not single inputs.
        let (Some(model), Some(cases)) = (fixture["model"].as_str(), fixture["cases"].as_array()) else { continue };
        let model = model.to_string();
        let ids = cases.iter().filter_map(|case| {
            Some(case["input_ids"].as_array()?.iter().map(|v| v.as_u64().unwrap_or_default() as u32).collect())
        });
        match by_model.iter_mut().find(|(m, _)| *m == model) {
            Some((_, inputs)) => inputs.extend(ids),
            None => by_model.push((model, ids.collect())),
        }
    }
    by_model
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
    match load(&model_dir("tiny-bert-sentiment"), Quantize::Int8) {
        Err(LoadError::Options(reason)) => assert!(reason.contains("--features dnnl"), "{reason}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("int8 loaded without an integer GEMM"),
    }
}

#[test]
#[cfg_attr(not(any(feature = "dnnl", feature = "mkl")), ignore = "needs an integer GEMM: --features dnnl (or mkl)")]
fn int8_matches_f32_on_every_golden_input() {
    assert!(has_int8());
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (name, inputs) in golden_inputs() {
        let dir = model_dir(&name);
        let reference = load(&dir, Quantize::None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let quantized = match load(&dir, Quantize::Int8) {
            Ok(model) => model,
            Err(LoadError::Options(reason)) => {
                // Only the encoders that candle-transformers provides lack an int8 path.
                assert!(reason.contains("--quantize int8 supports"), "{name}: {reason}");
                report.push(format!("{name}: refused ({reason})"));
                continue;
            }
            Err(e) => panic!("{name}: int8 load failed: {e}"),
        };
        let mut lowest = 1f32;
        for ids in &inputs {
            let types = vec![0u32; ids.len()];
            let input = [ModelInput { ids, type_ids: &types }];
            let want = reference.forward(&input).unwrap();
            let got = quantized.forward(&input).unwrap();
            if let Some(failure) = compare(&want[0], &got[0], &mut lowest) {
                failures.push(format!("{name} {ids:?}: {failure}"));
            }
        }
        let cosine =
            if lowest < 1.0 { format!("lowest hidden-state cosine {lowest:.5}") } else { "labels compared".into() };
        report.push(format!("{name}: {} inputs, {cosine}", inputs.len()));
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "int8 differs from f32:\n{}", failures.join("\n"));
}

#[test]
#[cfg_attr(not(any(feature = "dnnl", feature = "mkl")), ignore = "needs an integer GEMM: --features dnnl (or mkl)")]
fn int8_batches_match_single_inputs() {
    // Per-row activation scales: an input's int8 result must not depend on its batch-mates.
    let model = load(&model_dir("all-MiniLM-L6-v2"), Quantize::Int8).unwrap();
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
