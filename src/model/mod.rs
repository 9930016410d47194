//! The model: loading a checkpoint onto a device and running padded batches.
//! Knows nothing of HTTP or tokenization; it takes token ids and returns raw f32 outputs.

mod arch;
pub mod device;
mod error;
pub mod files;
pub mod gemm;
pub mod hf_config;
pub mod kernels;
pub mod task;
mod weights;

use candle_core::{DType, Device, Tensor};

pub use arch::Act;
pub use device::{DTypeSpec, DeviceList, DeviceSpec};
pub use error::LoadError;
pub use hf_config::HfConfig;
pub use task::Task;

pub use arch::AnswerTokens;
use arch::{EncoderKind, Head, HeadTask, MaskedLmHead, Network, PaddedBatch};
use files::ModelFiles;
use gemm::cpu::CpuGemm;
use gemm::{Backend, Cpu, GemmChoice, LinearOptions, Quantize};
use weights::Weights;

/// One tokenized input as the model sees it.
#[derive(Debug, Clone, Copy)]
pub struct ModelInput<'a> {
    pub ids: &'a [u32],
    pub type_ids: &'a [u32],
}

/// A row-major f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.cols.max(1))
    }
}

/// What the model returns for one input, before any pipeline post-processing.
#[derive(Debug, Clone, PartialEq)]
pub enum RawOutput {
    /// Last hidden state per token (tokens × hidden).
    Hidden(Matrix),
    /// Sequence-classification logits.
    Logits(Vec<f32>),
    /// Token-classification logits (tokens × labels).
    TokenLogits(Matrix),
    /// Vocabulary logits at each mask position, in order (masks × vocab).
    MaskLogits(Matrix),
    /// The most likely tokens at each mask position, in order: `(token id, probability)`, most
    /// likely first (what [`RawOutput::keep_top_k`] makes of `MaskLogits`).
    MaskTopK(Vec<Vec<(u32, f32)>>),
    /// SPLADE: the vocabulary weights `max over tokens of log(1 + relu(logits))` that are not
    /// zero, as `(token id, weight)` by ascending id (at most the vocabulary size).
    Sparse(Vec<(u32, f32)>),
}

impl RawOutput {
    /// Reduces mask logits to the `k` most likely tokens per mask (softmax over the whole
    /// vocabulary first); other outputs are returned unchanged.
    pub fn keep_top_k(self, k: usize) -> Self {
        match self {
            Self::MaskLogits(logits) => Self::MaskTopK(
                logits
                    .iter_rows()
                    .map(|row| {
                        let probs = softmax(row);
                        top_indices(&probs, k).into_iter().map(|i| (i as u32, probs[i])).collect()
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}

/// Softmax in f32, shifted by the max as numpy and torch do.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Indices of the `k` largest values, largest first (the lower index first on ties).
pub fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    if k == 0 {
        return Vec::new();
    }
    let by_value_desc = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    idx.select_nth_unstable_by(k - 1, by_value_desc);
    idx.truncate(k);
    idx.sort_by(by_value_desc);
    idx
}

/// What was learned about the checkpoint while loading it.
#[derive(Debug, Clone)]
pub struct ModelMeta {
    pub task: Task,
    pub model_type: String,
    pub labels: Vec<String>,
    pub problem_type: Option<String>,
    pub max_positions: usize,
    /// Width of the hidden states (what one token's feature-extraction output holds).
    pub hidden_size: usize,
    pub device: DeviceSpec,
    /// The dtype the model runs in (`--dtype auto` resolved).
    pub dtype: DTypeSpec,
    /// The GEMM library of the encoder's linear layers.
    pub gemm: Backend,
    /// Whether the encoder runs a batch's tokens packed end to end (no padding).
    pub packed: bool,
    /// Whether the model scores a yes/no answer (Qwen3-Reranker): its text pairs take the prompt
    /// of its model card.
    pub answers: bool,
}

/// How to load a model: where it runs and how its math is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelOptions {
    pub device: DeviceSpec,
    pub dtype: DTypeSpec,
    /// The GEMM library of the encoder's linear layers (`--gemm`).
    pub gemm: GemmChoice,
    /// int8 linear layers (`--quantize`).
    pub quantize: Quantize,
    /// Serve the masked-LM head pooled as SPLADE sparse embeddings (a feature-extraction model).
    pub splade: bool,
    /// The tokenizer's "yes" and "no" tokens, when it has them: a decoder language model served
    /// for text classification is scored on them (Qwen3-Reranker).
    pub answers: Option<AnswerTokens>,
}

/// The packed encoder's GEMM for bf16 when `--gemm auto` resolved to one that is slow in bf16 on
/// this CPU (MKL without AMX) and the build has oneDNN, whose bf16 matmul is fast wherever the CPU
/// has bf16 arithmetic; `None` keeps the resolved one. f32 (asked for, or auto without bf16
/// arithmetic) keeps it too: on a CPU with bf16 arithmetic auto resolves f32 to MKL, and oneDNN's
/// f32 GEMM is not faster than MKL's there.
fn bf16_gemm(packed: Option<CpuGemm>, gemm: GemmChoice, dtype: DTypeSpec, cpu: gemm::Bf16Support) -> Option<CpuGemm> {
    let resolved = packed?;
    let wants_bf16 = matches!(dtype, DTypeSpec::Auto | DTypeSpec::BF16) && cpu != gemm::Bf16Support::None;
    let dnnl = CpuGemm::Dnnl;
    (gemm == GemmChoice::Auto && wants_bf16 && !resolved.fast_bf16(cpu) && dnnl.fast_bf16(cpu)).then_some(dnnl)
}

/// A loaded model on its device. Owned by the worker thread.
pub struct Model {
    network: Network,
    device: Device,
    pad_id: u32,
    mask_id: Option<u32>,
}

impl Model {
    /// Loads the checkpoint in `files` for `task` (or the task its config names).
    pub fn load(
        files: &ModelFiles,
        task: Option<Task>,
        device_spec: DeviceSpec,
        dtype_spec: DTypeSpec,
    ) -> Result<(Self, ModelMeta), LoadError> {
        let options = ModelOptions { device: device_spec, dtype: dtype_spec, ..ModelOptions::default() };
        Self::load_with_options(files, task, &options)
    }

    /// Loads the checkpoint in `files` for `task` with every option.
    pub fn load_with_options(
        files: &ModelFiles,
        task: Option<Task>,
        options: &ModelOptions,
    ) -> Result<(Self, ModelMeta), LoadError> {
        let ModelOptions { device: device_spec, dtype: dtype_spec, gemm, quantize, splade, answers } = *options;
        let mut linear = if device_spec == DeviceSpec::Cpu {
            LinearOptions::resolve(gemm, quantize).map_err(LoadError::Options)?
        } else if quantize == Quantize::Int8 {
            return Err(LoadError::Options("--quantize int8 runs on the CPU only".into()));
        } else {
            LinearOptions::default()
        };
        let raw: serde_json::Value = files::read_json(&files.config)?;
        let config: HfConfig = serde_json::from_value(raw.clone())
            .map_err(|e| LoadError::BadConfig { path: files.config.clone(), reason: e.to_string() })?;
        let task = if splade { splade_task(task)? } else { resolve_task(task, &config)? };
        let device = device_spec.open()?;
        let bf16 = Cpu::detect().bf16;
        let mut packed = arch::packed_gemm(&config, &device, &linear);
        if let Some(g) = bf16_gemm(packed, gemm, dtype_spec, bf16) {
            packed = Some(g);
            linear.backend = g.backend();
        }
        tracing::info!(gemm = %linear.backend, quantize = %linear.quantize, "linear layers");
        let dtype = dtype_spec.resolve(device_spec, bf16, packed).map_err(LoadError::Options)?;
        if dtype == DType::BF16 && device_spec == DeviceSpec::Cpu && packed.is_some_and(|g| !g.fast_bf16(bf16)) {
            tracing::warn!("bf16 on this GEMM and CPU served slower than f32 in docs/benchmarks.md (round 5)");
        }
        tracing::info!(dtype = %DTypeSpec::of(dtype), requested = %dtype_spec, packed = packed.is_some(), "dtype");
        let weights = Weights::read(&files.weights)?;
        let network = arch::load(&config, &raw, weights, HeadTask { task, splade, answers }, dtype, &device, &linear)?;
        let labels = match &network.head {
            Head::Sequence(_) | Head::Token(_) => config.labels(network.head.outputs()),
            _ => Vec::new(),
        };
        let meta = ModelMeta {
            task,
            model_type: network.model_type.clone(),
            labels,
            problem_type: config.problem_type.clone(),
            max_positions: network.max_positions,
            hidden_size: ["hidden_size", "dim", "d_model"]
                .iter()
                .find_map(|k| raw.get(*k).and_then(serde_json::Value::as_u64))
                .unwrap_or(768) as usize,
            device: device_spec,
            dtype: DTypeSpec::of(dtype),
            gemm: linear.backend,
            packed: packed.is_some(),
            answers: network.answers,
        };
        let pad_id = config.pad_token_id.unwrap_or(0);
        Ok((Self { network, device, pad_id, mask_id: None }, meta))
    }

    /// Sets the ids the tokenizer uses for padding and masking (known only once it is loaded).
    pub fn set_special_ids(&mut self, pad_id: u32, mask_id: Option<u32>) {
        self.pad_id = pad_id;
        self.mask_id = mask_id;
    }

    /// Runs one batch and returns one output per input; an input's output does not depend on its
    /// batch-mates. The packed encoder runs the batch's tokens end to end; the padded one pads
    /// to the longest input and masks the padding. Heads other than the hidden states take the
    /// padded layout.
    pub fn forward(&self, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let batch_size = inputs.len();
        let seq = inputs.iter().map(|i| i.ids.len()).max().unwrap_or(0);
        if inputs.iter().any(|i| i.ids.is_empty()) {
            candle_core::bail!("empty input in batch");
        }
        let lens: Vec<usize> = inputs.iter().map(|i| i.ids.len()).collect();
        let packed = match &self.network.encoder {
            EncoderKind::Packed(encoder) => {
                let flat = encoder.forward(inputs)?;
                let width = flat.len() / lens.iter().sum::<usize>();
                match &self.network.head {
                    Head::Hidden => {
                        return Ok(unpack(flat, &lens, width).into_iter().map(RawOutput::Hidden).collect());
                    }
                    Head::Splade(head) => {
                        let rows = Tensor::from_vec(flat, (lens.iter().sum::<usize>(), width), &self.device)?;
                        let mut at = 0;
                        return lens
                            .iter()
                            .map(|&len| {
                                at += len;
                                splade(head, &rows.narrow(0, at - len, len)?)
                            })
                            .collect();
                    }
                    _ => {}
                }
                Some((flat, width))
            }
            EncoderKind::Padded(_) => None,
        };
        let mut ids = vec![self.pad_id; batch_size * seq];
        let mut type_ids = vec![0u32; batch_size * seq];
        let mut mask = vec![0u32; batch_size * seq];
        for (row, input) in inputs.iter().enumerate() {
            let at = row * seq;
            ids[at..at + input.ids.len()].copy_from_slice(input.ids);
            type_ids[at..at + input.type_ids.len()].copy_from_slice(input.type_ids);
            mask[at..at + input.ids.len()].fill(1);
        }
        let shape = (batch_size, seq);
        let batch = PaddedBatch {
            ids: Tensor::from_vec(ids.clone(), shape, &self.device)?,
            type_ids: Tensor::from_vec(type_ids, shape, &self.device)?,
            mask: Tensor::from_vec(mask, shape, &self.device)?,
        };
        let hidden = match (&self.network.encoder, packed) {
            (EncoderKind::Padded(encoder), _) => encoder.forward(&batch)?,
            (EncoderKind::Packed(_), Some((flat, width))) => pad(&flat, &lens, seq, width, &self.device)?,
            (EncoderKind::Packed(_), None) => unreachable!("the packed encoder ran above"),
        };
        match &self.network.head {
            Head::Hidden => per_token(&hidden, &lens).map(|m| m.into_iter().map(RawOutput::Hidden).collect()),
            Head::Token(head) => {
                let logits = head.forward(&hidden)?;
                per_token(&logits, &lens).map(|m| m.into_iter().map(RawOutput::TokenLogits).collect())
            }
            Head::Sequence(head) => {
                let logits = head.forward(&hidden, &batch.mask)?.to_dtype(DType::F32)?;
                Ok(logits.to_vec2::<f32>()?.into_iter().map(RawOutput::Logits).collect())
            }
            Head::Splade(head) => {
                lens.iter().enumerate().map(|(row, &len)| splade(head, &hidden.get(row)?.narrow(0, 0, len)?)).collect()
            }
            Head::MaskedLm(head) => {
                let mask_id = self.mask_id.ok_or_else(|| candle_core::Error::msg("tokenizer has no mask token"))?;
                let positions: Vec<u32> = (0..ids.len()).filter(|&i| ids[i] == mask_id).map(|i| i as u32).collect();
                let counts: Vec<usize> = (0..batch_size)
                    .map(|r| ids[r * seq..(r + 1) * seq].iter().filter(|&&id| id == mask_id).count())
                    .collect();
                let vocab = self.network.head.outputs();
                let logits = if positions.is_empty() {
                    Vec::new()
                } else {
                    let hidden_size = hidden.dim(2)?;
                    let index = Tensor::from_vec(positions.clone(), positions.len(), &self.device)?;
                    let rows = hidden.reshape((batch_size * seq, hidden_size))?.index_select(&index, 0)?;
                    head.forward(&rows)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?
                };
                let mut offset = 0;
                Ok(counts
                    .into_iter()
                    .map(|n| {
                        let data = logits[offset * vocab..(offset + n) * vocab].to_vec();
                        offset += n;
                        RawOutput::MaskLogits(Matrix { rows: n, cols: vocab, data })
                    })
                    .collect())
            }
        }
    }
}

/// SPLADE pooling of one input's token states (`tokens × hidden`): the masked-LM logits, their
/// max over the tokens, then `log(1 + relu(·))` (monotone, so it commutes with the max), keeping
/// the weights that are not zero. `ln_1p` in f32 keeps a tiny positive logit non-zero, as torch's
/// `log1p` does.
fn splade(head: &MaskedLmHead, states: &Tensor) -> candle_core::Result<RawOutput> {
    let best = head.forward(states)?.to_dtype(DType::F32)?.max(0)?.to_vec1::<f32>()?;
    Ok(RawOutput::Sparse(
        best.into_iter()
            .enumerate()
            .filter(|&(_, logit)| logit > 0.0)
            .map(|(id, logit)| (id as u32, logit.ln_1p()))
            .collect(),
    ))
}

/// Splits packed `tokens × cols` rows into one `len × cols` matrix per input.
fn unpack(flat: Vec<f32>, lens: &[usize], cols: usize) -> Vec<Matrix> {
    if let [len] = lens {
        return vec![Matrix { rows: *len, cols, data: flat }];
    }
    let mut at = 0;
    lens.iter()
        .map(|&len| {
            let data = flat[at * cols..(at + len) * cols].to_vec();
            at += len;
            Matrix { rows: len, cols, data }
        })
        .collect()
}

/// Packed `tokens × cols` rows as a zero-padded `batch × seq × cols` tensor, for the heads.
fn pad(flat: &[f32], lens: &[usize], seq: usize, cols: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut padded = vec![0f32; lens.len() * seq * cols];
    let mut at = 0;
    for (row, &len) in lens.iter().enumerate() {
        padded[row * seq * cols..(row * seq + len) * cols].copy_from_slice(&flat[at * cols..(at + len) * cols]);
        at += len;
    }
    Tensor::from_vec(padded, (lens.len(), seq, cols), device)
}

/// Splits `batch × seq × cols` into one `len × cols` matrix per input, dropping the padding.
fn per_token(t: &Tensor, lens: &[usize]) -> candle_core::Result<Vec<Matrix>> {
    let (_, seq, cols) = t.dims3()?;
    let flat = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(lens
        .iter()
        .enumerate()
        .map(|(row, &len)| {
            let at = row * seq * cols;
            Matrix { rows: len, cols, data: flat[at..at + len * cols].to_vec() }
        })
        .collect())
}

/// SPLADE pooling serves a masked-LM checkpoint as a feature-extraction model.
fn splade_task(explicit: Option<Task>) -> Result<Task, LoadError> {
    match explicit {
        None | Some(Task::FeatureExtraction) => Ok(Task::FeatureExtraction),
        Some(task) => Err(LoadError::TaskNotServable {
            task: task.to_string(),
            reason: "splade pooling serves sparse embeddings, a feature-extraction task".into(),
        }),
    }
}

/// Picks the task: an explicit one must be one the checkpoint was trained for (feature extraction
/// is always possible); otherwise the config's architecture decides.
fn resolve_task(explicit: Option<Task>, config: &HfConfig) -> Result<Task, LoadError> {
    let from_arch = config.architectures.first().and_then(|a| Task::from_architecture(a));
    match (explicit, from_arch) {
        (Some(Task::FeatureExtraction), _) => Ok(Task::FeatureExtraction),
        (Some(task), Some(trained)) if task != trained && trained != Task::FeatureExtraction => {
            Err(LoadError::TaskNotServable {
                task: task.to_string(),
                reason: format!(
                    "the checkpoint is a {} ({trained} model)",
                    config.architectures.first().map(String::as_str).unwrap_or("?")
                ),
            })
        }
        (Some(task), _) => Ok(task),
        (None, Some(trained)) => Ok(trained),
        (None, None) => match config.architectures.first() {
            Some(arch) if arch.ends_with("ForCausalLM") => Err(LoadError::TaskNotServable {
                task: "(none given)".into(),
                reason: format!(
                    "{arch} is a language model: set --task feature-extraction to serve embeddings (Qwen3-Embedding; \
                     pooled as its sentence-transformers files say) or --task text-classification to serve it as a \
                     yes/no reranker (Qwen3-Reranker, scored on its last token's \"yes\" and \"no\")"
                ),
            }),
            Some(arch) => Err(LoadError::UnknownArchitecture(arch.clone())),
            None => Err(LoadError::NoTask),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_indices_are_sorted_and_capped() {
        assert_eq!(top_indices(&[0.1, 0.5, 0.2, 0.9], 2), vec![3, 1]);
        assert_eq!(top_indices(&[0.1, 0.5], 5), vec![1, 0]);
    }

    #[test]
    fn mask_logits_leave_the_worker_as_k_probabilities_per_mask() {
        let logits = Matrix { rows: 2, cols: 3, data: vec![1.0, 3.0, 2.0, 0.0, 0.0, 5.0] };
        let RawOutput::MaskTopK(best) = RawOutput::MaskLogits(logits).keep_top_k(2) else { panic!("not reduced") };
        assert_eq!(
            best.iter().map(|m| m.iter().map(|c| c.0).collect::<Vec<_>>()).collect::<Vec<_>>(),
            [[1, 2], [2, 0]]
        );
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert_eq!(best[0][0].1, p[1], "probabilities over the whole row");
        assert!(matches!(RawOutput::Logits(vec![1.0]).keep_top_k(1), RawOutput::Logits(_)));
    }
}
