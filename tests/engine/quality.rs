//! The quality gates of the fast CPU paths (`--quantize int8`, `--dtype bf16`) against f32, on
//! every golden input (tests/fixtures/golden): the model alone (`Model::load_with_options` +
//! `Model::forward`), the recorded input ids and the tokenizer's special ids.
//!
//! Labels (fill-mask top-1, sequence labels, token labels) must be f32's, except where f32's own
//! top-1 leads its runner-up by less than the gate's tie margin (in logits): those are exempt,
//! counted and reported, never silently passed.

use std::path::{Path, PathBuf};

use pipeserve::model::files::ModelFiles;
use pipeserve::model::{AnswerTokens, LoadError, Model, ModelInput, ModelOptions, RawOutput, Task};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model_dir(name: &str) -> PathBuf {
    let fetched = root().join("models").join(name);
    if fetched.is_dir() {
        return fetched;
    }
    let committed = root().join("tests/fixtures/models").join(name);
    assert!(committed.is_dir(), "model {name} is missing: run `python3 scripts/fetch_models.py` first");
    committed
}

pub fn load(dir: &Path, options: &ModelOptions) -> Result<Model, LoadError> {
    let files = ModelFiles::locate(dir)?;
    // A sentence-transformers folder is an embedding model (as the loader serves it), whatever
    // head its config names (all-mpnet-base-v2: MPNetForMaskedLM, without the head).
    // A decoder checkpoint (`*ForCausalLM`) is served with a task named: here a Qwen3-Reranker,
    // as `--task text-classification` serves it (the yes/no answer from the tokenizer's tokens).
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&files.config).unwrap()).unwrap();
    let causal = config["architectures"]
        .as_array()
        .is_some_and(|a| a.iter().any(|name| name.as_str().is_some_and(|n| n.ends_with("ForCausalLM"))));
    let task = match (files.modules.is_some(), causal) {
        (true, _) => Some(Task::FeatureExtraction),
        (false, true) => Some(Task::TextClassification),
        (false, false) => None,
    };
    let tokenizer = dir.join("tokenizer.json");
    let tok = tokenizer.is_file().then(|| tokenizers::Tokenizer::from_file(&tokenizer).expect("tokenizer"));
    let answers =
        tok.as_ref().and_then(|t| Some(AnswerTokens { yes: t.token_to_id("yes")?, no: t.token_to_id("no")? }));
    let (mut model, _) = Model::load_with_options(&files, task, &ModelOptions { answers, ..*options })?;
    // The ids the pipelines set from the tokenizer: padding and, for fill-mask, the mask.
    if let Some(tok) = tok {
        let pad = tok.get_padding().map_or(0, |p| p.pad_id);
        let mask = ["[MASK]", "<mask>"].iter().find_map(|m| tok.token_to_id(m));
        model.set_special_ids(pad, mask);
    }
    Ok(model)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
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

/// What a gate requires.
pub struct Gate {
    /// Lowest cosine of the hidden states to f32's: per token, or of the mean-pooled embedding.
    pub min_cosine: f32,
    /// Compare the mean-pooled embedding (what `/embed` serves) instead of every token's state.
    pub pooled: bool,
    /// Tie margins in logits: sequence labels, token labels, fill-mask top-1.
    pub sequence_tie: f32,
    pub token_tie: f32,
    pub mask_tie: f32,
}

/// What one gate run saw.
#[derive(Default)]
pub struct Seen {
    pub lowest_cosine: f32,
    /// Label comparisons made, and those exempt as ties.
    pub labels: usize,
    pub ties: usize,
}

impl Gate {
    /// Compares one output; returns a failure, if any.
    fn compare(&self, want: &RawOutput, got: &RawOutput, seen: &mut Seen) -> Option<String> {
        let mut label = |x: &[f32], y: &[f32], tie: f32, what: &str| -> Option<String> {
            seen.labels += 1;
            if argmax(x) == argmax(y) {
                return None;
            }
            if margin(x) < tie {
                seen.ties += 1;
                return None;
            }
            Some(format!("{what}: top-1 {} instead of {} (f32 margin {:.4})", argmax(y), argmax(x), margin(x)))
        };
        match (want, got) {
            (RawOutput::Hidden(a), RawOutput::Hidden(b)) => {
                let worst = if self.pooled {
                    let mean = |m: &pipeserve::model::Matrix| {
                        let mut sum = vec![0f32; m.cols];
                        m.iter_rows().for_each(|r| sum.iter_mut().zip(r).for_each(|(s, v)| *s += v));
                        sum
                    };
                    cosine(&mean(a), &mean(b))
                } else {
                    a.iter_rows().zip(b.iter_rows()).map(|(x, y)| cosine(x, y)).fold(1f32, f32::min)
                };
                seen.lowest_cosine = seen.lowest_cosine.min(worst);
                (worst < self.min_cosine).then(|| format!("hidden states at cosine {worst:.6} < {}", self.min_cosine))
            }
            (RawOutput::Logits(a), RawOutput::Logits(b)) => label(a, b, self.sequence_tie, "label"),
            (RawOutput::TokenLogits(a), RawOutput::TokenLogits(b)) => a
                .iter_rows()
                .zip(b.iter_rows())
                .enumerate()
                .find_map(|(i, (x, y))| label(x, y, self.token_tie, &format!("token {i}"))),
            (RawOutput::MaskLogits(a), RawOutput::MaskLogits(b)) => a
                .iter_rows()
                .zip(b.iter_rows())
                .enumerate()
                .find_map(|(i, (x, y))| label(x, y, self.mask_tie, &format!("mask {i}"))),
            _ => Some("output kinds differ".into()),
        }
    }

    /// Runs every golden input through f32 and through `options` (`None` from `variant` for a
    /// model the variant must refuse, with the reason checked by `refused`); panics with every
    /// failure, prints what it compared.
    pub fn run(&self, options: &ModelOptions, refused: impl Fn(&str, &str)) {
        let mut report = Vec::new();
        let mut failures = Vec::new();
        let f32_options = ModelOptions { dtype: pipeserve::model::DTypeSpec::F32, ..ModelOptions::default() };
        for (name, inputs) in golden_inputs() {
            let dir = model_dir(&name);
            let reference = load(&dir, &f32_options).unwrap_or_else(|e| panic!("{name}: {e}"));
            let variant = match load(&dir, options) {
                Ok(model) => model,
                Err(LoadError::Options(reason)) => {
                    refused(&name, &reason);
                    report.push(format!("{name}: refused ({reason})"));
                    continue;
                }
                Err(e) => panic!("{name}: load failed: {e}"),
            };
            let mut seen = Seen { lowest_cosine: 1.0, ..Seen::default() };
            for ids in &inputs {
                let types = vec![0u32; ids.len()];
                let input = [ModelInput { ids, type_ids: &types }];
                let want = reference.forward(&input).unwrap();
                let got = variant.forward(&input).unwrap();
                if let Some(failure) = self.compare(&want[0], &got[0], &mut seen) {
                    failures.push(format!("{name} {ids:?}: {failure}"));
                }
            }
            let cosine = if seen.lowest_cosine < 1.0 {
                format!(", lowest cosine {:.6}", seen.lowest_cosine)
            } else {
                String::new()
            };
            report.push(format!(
                "{name}: {} inputs{cosine}, {} labels compared, {} exempt as ties",
                inputs.len(),
                seen.labels,
                seen.ties
            ));
        }
        println!("{}", report.join("\n"));
        assert!(failures.is_empty(), "differs from f32:\n{}", failures.join("\n"));
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
