//! Encoder architectures behind one interface, and the task heads on top of them.
//!
//! BERT, DistilBERT and ELECTRA share the encoder in `bert.rs` (candle's BERT turns the attention mask into
//! NaN in f16, candle's DistilBERT uses an approximate GELU); (XLM-)RoBERTa, DeBERTa-v2 and
//! ModernBERT reuse candle-transformers' encoders. Heads
//! are written with candle-nn on the Hugging Face tensor names, so fine-tuned checkpoints load unchanged.

mod bert;
pub mod bert_packed;
mod deberta;
mod gelu;
mod heads;
mod modernbert;
mod mpnet;
mod qwen3;
mod roberta;

use candle_core::{DType, Device, Module, Result, Tensor};

pub use heads::{Head, HeadContext, MaskedLmHead, SequencePooling};
pub use qwen3::AnswerTokens;

use super::gemm::cpu::{CpuGemm, Precision};
use super::gemm::{Backend, LinearOptions, Quantize};
use super::hf_config::HfConfig;
use super::task::Task;
use super::weights::Weights;
use super::LoadError;

/// A padded batch on the model's device. `mask` is 1 for real tokens and 0 for padding.
pub struct PaddedBatch {
    pub ids: Tensor,
    pub type_ids: Tensor,
    pub mask: Tensor,
}

/// An encoder: token ids in, one hidden state per token out (`batch × seq × hidden`). `Sync`: model
/// instances share one encoder (`--instances`).
pub trait Encoder: Send + Sync {
    fn forward(&self, batch: &PaddedBatch) -> Result<Tensor>;
}

/// Activation functions by their `transformers` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Gelu,
    GeluTanh,
    Relu,
    Tanh,
    Silu,
}

impl Act {
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_fast" | "gelu_pytorch_tanh" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            "tanh" => Ok(Self::Tanh),
            "silu" | "swish" => Ok(Self::Silu),
            other => Err(format!("unsupported activation {other:?}")),
        }
    }
}

impl Module for Act {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gelu => gelu::gelu_erf(xs),
            Self::GeluTanh => xs.gelu(),
            Self::Relu => xs.relu(),
            Self::Tanh => xs.tanh(),
            Self::Silu => xs.silu(),
        }
    }
}

/// How an encoder takes a batch.
pub enum EncoderKind {
    /// Padded to the longest input (`batch × seq × hidden`), on candle: any device and dtype.
    Padded(Box<dyn Encoder>),
    /// The batch's tokens packed end to end, on the CPU (src/model/arch/bert_packed.rs).
    Packed(bert_packed::PackedBert),
}

/// The GEMM library the packed encoder would run `config`'s model on, or `None` where the padded
/// encoder serves it: another architecture, an ELECTRA whose embeddings are projected to the
/// hidden width, a GPU, int8, or a GEMM library (OpenBLAS, oneDNN) whose thread pool cannot be
/// switched off per call.
pub fn packed_gemm(config: &HfConfig, device: &Device, linear: &LinearOptions) -> Option<CpuGemm> {
    let ours = matches!(config.model_type().as_str(), "bert" | "distilbert" | "electra");
    if !ours || !config.embeddings_match_hidden() || !device.is_cpu() || linear.quantize != Quantize::None {
        return None;
    }
    CpuGemm::for_backend(linear.backend)
}

/// An encoder as an architecture module returns it.
pub struct Loaded {
    pub encoder: EncoderKind,
    /// Longest input in tokens the position embeddings allow.
    pub max_positions: usize,
    /// The activation the masked-LM transform uses.
    pub act: Act,
    pub eps: f64,
}

/// Why an architecture module could not load.
pub enum LoadFailure {
    Config(String),
    Load(candle_core::Error),
    /// The checkpoint has no head for the task; the reason names what is missing.
    NotServable(String),
}

/// An encoder with the head its task needs.
pub struct Network {
    pub encoder: EncoderKind,
    pub head: Head,
    /// Model type as loaded (`bert`, `distilbert`, ...).
    pub model_type: String,
    /// Longest input in tokens the position embeddings allow.
    pub max_positions: usize,
    /// Whether the head scores a yes/no answer (Qwen3-Reranker), whose inputs take its prompt.
    pub answers: bool,
}

/// The head to load: the task's, or (`splade`, a feature-extraction task) the masked-LM head
/// pooled as SPLADE.
#[derive(Debug, Clone, Copy)]
pub struct HeadTask {
    pub task: Task,
    pub splade: bool,
    /// The tokenizer's "yes" and "no", for a decoder scored as a yes/no reranker.
    pub answers: Option<AnswerTokens>,
}

/// Builds the network for `head` from the checkpoint.
pub fn load(
    config: &HfConfig,
    raw_config: &serde_json::Value,
    weights: Weights,
    head: HeadTask,
    dtype: DType,
    device: &Device,
    linear: &LinearOptions,
) -> std::result::Result<Network, LoadError> {
    let model_type = config.model_type();
    let ours = matches!(model_type.as_str(), "bert" | "distilbert" | "electra");
    if !ours && linear.quantize == Quantize::Int8 {
        // candle-transformers' encoders hold candle-nn's Linear, which has no int8 form.
        return Err(LoadError::Options(format!(
            "--quantize int8 supports bert, distilbert and electra models, not {model_type}"
        )));
    }
    if linear.quantize == Quantize::Int8 && (dtype != DType::F32 || !device.is_cpu()) {
        return Err(LoadError::Options("--quantize int8 runs on the CPU with --dtype f32".into()));
    }
    if !ours && linear.backend != Backend::Candle {
        tracing::debug!(%model_type, "this encoder runs on candle's matmul, not {}", linear.backend);
    }
    if model_type == "qwen3" {
        return load_qwen3(raw_config, weights, head, dtype, device);
    }
    let names = heads::HeadNames::for_model_type(&model_type)
        .ok_or_else(|| LoadError::UnknownArchitecture(model_type.clone()))?;
    let prefix = names.base_prefix(&weights);
    // SPLADE runs the masked-LM head, on every token.
    let task = if head.splade { Task::FillMask } else { head.task };
    heads::check_task(task, &names, &prefix, &weights).map_err(|e| match e {
        LoadError::TaskNotServable { reason, .. } if head.splade => {
            LoadError::TaskNotServable { task: "feature-extraction with splade pooling".into(), reason }
        }
        other => other,
    })?;
    let num_labels = heads::num_labels(task, &names, &weights);
    let packed = packed_gemm(config, device, linear);
    // The packed encoder converts its GEMM weights itself; everything else it holds, and the
    // heads on top of it, stay f32.
    let vb = weights.into_var_builder(if packed.is_some() { DType::F32 } else { dtype }, device);
    let mismatch = |e: candle_core::Error| {
        LoadError::WeightsMismatch(e.to_string().lines().next().unwrap_or_default().to_string())
    };
    let bad_config = |reason: String| LoadError::BadConfig { path: "config.json".into(), reason };
    let base = if prefix.is_empty() { vb.clone() } else { vb.pp(prefix.trim_end_matches('.')) };
    let load_failure = |e: LoadFailure| match e {
        LoadFailure::Config(reason) => bad_config(reason),
        LoadFailure::Load(e) => mismatch(e),
        LoadFailure::NotServable(reason) => LoadError::TaskNotServable { task: task.to_string(), reason },
    };
    let loaded = match (model_type.as_str(), packed) {
        (_, Some(gemm)) => {
            let precision = if dtype == DType::BF16 { Precision::Bf16 } else { Precision::F32 };
            bert_packed::PackedBert::load(base, raw_config, &model_type, gemm, precision).and_then(|(encoder, cfg)| {
                let act = Act::parse(&cfg.hidden_act).map_err(LoadFailure::Config)?;
                Ok(Loaded {
                    encoder: EncoderKind::Packed(encoder),
                    max_positions: cfg.max_position_embeddings,
                    act,
                    eps: cfg.layer_norm_eps,
                })
            })
        }
        ("bert" | "distilbert" | "electra", None) => bert::load(base, raw_config, &model_type, linear),
        ("deberta-v2", None) => deberta::load(base, raw_config),
        ("mpnet", None) => mpnet::load(base, raw_config),
        // candle's ModernBERT adds its `model.` prefix itself.
        ("modernbert", None) => modernbert::load(vb.clone(), raw_config),
        (_, None) => roberta::load(base, raw_config),
    }
    .map_err(load_failure)?;
    let Loaded { encoder, max_positions, act, eps } = loaded;
    let pooling = match raw_config.get("classifier_pooling").and_then(|v| v.as_str()) {
        Some("mean") => SequencePooling::Mean,
        _ => SequencePooling::First,
    };
    let ctx = HeadContext { prefix: &prefix, hidden: config.hidden_size, encoder_act: act, eps, num_labels, pooling };
    let head = match heads::Head::load(task, &names, &ctx, &vb).map_err(mismatch)? {
        Head::MaskedLm(mlm) if head.splade => Head::Splade(mlm),
        other => other,
    };
    Ok(Network { encoder, head, model_type, max_positions, answers: false })
}

/// Qwen3 loads its own heads (src/model/arch/qwen3.rs): they pool the last token.
fn load_qwen3(
    raw_config: &serde_json::Value,
    weights: Weights,
    head: HeadTask,
    dtype: DType,
    device: &Device,
) -> std::result::Result<Network, LoadError> {
    if head.splade {
        return Err(LoadError::TaskNotServable {
            task: "feature-extraction with splade pooling".into(),
            reason: "Qwen3 is a decoder: it has no masked-LM head".into(),
        });
    }
    let vb = weights.into_var_builder(dtype, device);
    let loaded = qwen3::load(vb, raw_config, head.task, head.answers).map_err(|e| match e {
        LoadFailure::Config(reason) => LoadError::BadConfig { path: "config.json".into(), reason },
        LoadFailure::Load(e) => {
            LoadError::WeightsMismatch(e.to_string().lines().next().unwrap_or_default().to_string())
        }
        LoadFailure::NotServable(reason) => LoadError::TaskNotServable { task: head.task.to_string(), reason },
    })?;
    Ok(Network {
        encoder: loaded.encoder,
        head: loaded.head,
        model_type: "qwen3".into(),
        max_positions: loaded.max_positions,
        answers: loaded.answers,
    })
}

/// The additive attention bias for a 0/1 mask: 0 where attended, a large negative where padded.
/// Computed once per batch, shaped `batch × 1 × 1 × seq` to broadcast over heads and queries.
pub fn attention_bias(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, s) = mask.dims2()?;
    // f16 cannot hold f32::MIN (it becomes -inf and 0 × -inf = NaN); -1e4 is still exp() → 0.
    let negative = if dtype == DType::F16 { -1.0e4 } else { -1.0e9 };
    let inverted = (1.0 - mask.to_dtype(DType::F32)?)?;
    (inverted * negative)?.to_dtype(dtype)?.reshape((b, 1, 1, s))
}
