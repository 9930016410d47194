//! Qwen3 (Qwen3-Embedding, Qwen3-Reranker): a decoder served as an encoder. Pre-norm layers with
//! RMSNorm, grouped-query attention with a per-head RMSNorm on queries and keys, rotary positions,
//! a SiLU-gated MLP; causal attention.
//!
//! Causal attention makes a right-padded batch exact with no padding mask: a real token never
//! attends to a later position, so the padding after it changes nothing, and every row's positions
//! start at 0. The padded rows are garbage that no head reads: heads pool the last real token.
//!
//! Heads: the hidden states (embeddings, pooled by the sentence-transformers files, last-token for
//! Qwen3-Embedding); `score` of `Qwen3ForSequenceClassification`; and Qwen3-Reranker's answer: the
//! last token's logit of "yes" minus that of "no", one row of the language-model head each, so
//! that the sigmoid of the one output is the model card's `softmax([no, yes])[yes]`.

use candle_core::{DType, Device, IndexOp, Module, Result, Tensor, D};
use candle_nn::{embedding, linear_b, linear_no_bias, rms_norm, Embedding, Linear, RmsNorm, VarBuilder};

use super::heads::SequenceHead;
use super::{Encoder, EncoderKind, Head, LoadFailure, PaddedBatch};
use crate::model::task::Task;

fn default_theta() -> f64 {
    1_000_000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

/// Qwen3 hyper-parameters from `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Not always `hidden_size / num_attention_heads` (Qwen3-0.6B: 128 against 1024 / 16).
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub max_position_embeddings: usize,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
}

impl Config {
    fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.use_sliding_window {
            return Err("use_sliding_window: sliding-window attention is not supported".into());
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("rope_scaling is not supported".into());
        }
        if self.hidden_act != "silu" {
            return Err(format!("hidden_act {:?}: Qwen3's MLP is SiLU-gated", self.hidden_act));
        }
        if self.num_key_value_heads == 0 || self.num_attention_heads % self.num_key_value_heads != 0 {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim() % 2 != 0 {
            return Err(format!("head_dim {} is odd: rotary positions rotate pairs", self.head_dim()));
        }
        Ok(())
    }
}

/// The rotary tables for every position, `positions × head_dim / 2` (computed in f32, as
/// `transformers` does, then cast to the model's dtype).
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(cfg: &Config, dtype: DType, device: &Device) -> Result<Self> {
        let dim = cfg.head_dim();
        let inv_freq: Vec<f32> =
            (0..dim).step_by(2).map(|i| (1.0 / cfg.rope_theta.powf(i as f64 / dim as f64)) as f32).collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, dim / 2), device)?;
        let positions = Tensor::arange(0u32, cfg.max_position_embeddings as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.max_position_embeddings, 1))?;
        let freqs = positions.matmul(&inv_freq)?;
        Ok(Self { cos: freqs.cos()?.to_dtype(dtype)?, sin: freqs.sin()?.to_dtype(dtype)? })
    }

    /// `x`: batch × heads × seq × head_dim, positions 0..seq.
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let seq = x.dim(2)?;
        candle_nn::rotary_emb::rope(&x.contiguous()?, &self.cos.narrow(0, 0, seq)?, &self.sin.narrow(0, 0, seq)?)
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (h, kv, d) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim());
        let bias = cfg.attention_bias;
        Ok(Self {
            q: linear_b(cfg.hidden_size, h * d, bias, vb.pp("q_proj"))?,
            k: linear_b(cfg.hidden_size, kv * d, bias, vb.pp("k_proj"))?,
            v: linear_b(cfg.hidden_size, kv * d, bias, vb.pp("v_proj"))?,
            o: linear_b(h * d, cfg.hidden_size, bias, vb.pp("o_proj"))?,
            q_norm: rms_norm(d, cfg.rms_norm_eps, vb.pp("q_norm"))?,
            k_norm: rms_norm(d, cfg.rms_norm_eps, vb.pp("k_norm"))?,
            heads: h,
            kv_heads: kv,
            head_dim: d,
        })
    }

    /// `x`: batch × seq × hidden.
    fn forward(&self, x: &Tensor, causal: &CausalBlocks, rotary: &Rotary) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let d = self.head_dim;
        // batch × seq × heads × d → RMSNorm per head → batch × heads × seq × d → rotary.
        let heads = |proj: &Linear, norm: &RmsNorm, n: usize| -> Result<Tensor> {
            let t = norm.forward(&proj.forward(x)?.reshape((b, s, n, d))?)?;
            rotary.apply(&t.transpose(1, 2)?)
        };
        let q = heads(&self.q, &self.q_norm, self.heads)?;
        let k = heads(&self.k, &self.k_norm, self.kv_heads)?;
        let v = self.v.forward(x)?.reshape((b, s, self.kv_heads, d))?.transpose(1, 2)?;
        let groups = self.heads / self.kv_heads;
        let k = candle_transformers::utils::repeat_kv(k, groups)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v.contiguous()?, groups)?.contiguous()?;
        let context = causal.attend(&q, &k, &v)?;
        self.o.forward(&context.transpose(1, 2)?.reshape((b, s, self.heads * d))?)
    }
}

/// Most bytes one block of attention scores takes (batch × heads × rows × keys). A long input's
/// queries are scored a block of rows at a time, so attention's memory grows with the sequence
/// instead of its square (Qwen3 allows 32k positions: one 32k × 32k f32 score matrix per head is
/// 4 GiB).
const SCORES_BYTES: usize = 256 << 20;

/// The query rows of causal attention in blocks: rows `start..end` attend keys `0..end`, through
/// `mask` (`rows × end`: 0 where the key is at or before the query, -inf after). Built once per
/// batch, used by every layer.
struct CausalBlocks {
    blocks: Vec<(usize, usize, Tensor)>,
}

impl CausalBlocks {
    fn new(seq: usize, rows_per_block: usize, dtype: DType, device: &Device) -> Result<Self> {
        let rows = rows_per_block.clamp(1, seq.max(1));
        let blocks = (0..seq)
            .step_by(rows)
            .map(|start| {
                let end = (start + rows).min(seq);
                Ok((start, end, causal_mask(start, end, dtype, device)?))
            })
            .collect::<Result<_>>()?;
        Ok(Self { blocks })
    }

    /// Rows per block for `batch × heads` score matrices of `seq` keys within [`SCORES_BYTES`].
    fn rows_within_budget(batch: usize, heads: usize, seq: usize, dtype: DType) -> usize {
        SCORES_BYTES / (batch * heads * seq * dtype.size_in_bytes()).max(1)
    }

    /// `q`, `k`, `v`: batch × heads × seq × d (keys and values repeated to the query heads).
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
        let whole = |t: &Tensor, start: usize, len: usize| {
            if start == 0 && len == t.dim(2)? {
                Ok(t.clone())
            } else {
                t.narrow(2, start, len)?.contiguous()
            }
        };
        let outputs = self
            .blocks
            .iter()
            .map(|(start, end, mask)| {
                let (rows, keys) = (whole(q, *start, end - start)?, whole(k, 0, *end)?);
                let scores = (rows.matmul(&keys.t()?)? * scale)?.broadcast_add(mask)?;
                candle_nn::ops::softmax_last_dim(&scores)?.matmul(&whole(v, 0, *end)?)
            })
            .collect::<Result<Vec<_>>>()?;
        if outputs.len() == 1 {
            return Ok(outputs.into_iter().next().expect("one block"));
        }
        Tensor::cat(&outputs, 2)
    }
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gated = (self.gate.forward(x)?.silu()? * self.up.forward(x)?)?;
        self.down.forward(&gated)
    }
}

struct Layer {
    attention_norm: RmsNorm,
    attention: Attention,
    mlp_norm: RmsNorm,
    mlp: Mlp,
}

/// The decoder as an [`Encoder`]: the final norm's states, batch × seq × hidden.
pub struct Qwen3 {
    embeddings: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    rotary: Rotary,
}

impl Qwen3 {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                let mlp = vb.pp("mlp");
                Ok(Layer {
                    attention_norm: rms_norm(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("input_layernorm"))?,
                    attention: Attention::load(cfg, vb.pp("self_attn"))?,
                    mlp_norm: rms_norm(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("post_attention_layernorm"))?,
                    mlp: Mlp {
                        gate: linear_no_bias(cfg.hidden_size, cfg.intermediate_size, mlp.pp("gate_proj"))?,
                        up: linear_no_bias(cfg.hidden_size, cfg.intermediate_size, mlp.pp("up_proj"))?,
                        down: linear_no_bias(cfg.intermediate_size, cfg.hidden_size, mlp.pp("down_proj"))?,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: embedding(cfg.vocab_size, cfg.hidden_size, vb.pp("embed_tokens"))?,
            layers,
            norm: rms_norm(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            rotary: Rotary::new(cfg, vb.dtype(), vb.device())?,
        })
    }
}

/// Rows `start..end` of the causal mask, over keys `0..end`: 0 where a query may attend (keys at or
/// before it), -inf after.
fn causal_mask(start: usize, end: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> =
        (start..end).flat_map(|i| (0..end).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(values, (end - start, end), device)?.to_dtype(dtype)
}

impl Encoder for Qwen3 {
    fn forward(&self, batch: &PaddedBatch) -> Result<Tensor> {
        let mut x = self.embeddings.forward(&batch.ids)?;
        let (b, seq, _) = x.dims3()?;
        let heads = self.layers.first().map_or(1, |l| l.attention.heads);
        let rows = CausalBlocks::rows_within_budget(b, heads, seq, x.dtype());
        let causal = CausalBlocks::new(seq, rows, x.dtype(), x.device())?;
        for layer in &self.layers {
            let attended = layer.attention.forward(&layer.attention_norm.forward(&x)?, &causal, &self.rotary)?;
            x = (x + attended)?;
            x = (&x + layer.mlp.forward(&layer.mlp_norm.forward(&x)?)?)?;
        }
        self.norm.forward(&x)
    }
}

/// Qwen3-Reranker's answer tokens: the ids of "yes" and "no" in its tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerTokens {
    pub yes: u32,
    pub no: u32,
}

/// A loaded Qwen3 with the head its task needs.
pub struct Qwen3Network {
    pub encoder: EncoderKind,
    pub head: Head,
    pub max_positions: usize,
    /// Whether the head is the reranker's yes/no answer (its inputs take the model card's prompt).
    pub answers: bool,
}

/// Loads Qwen3 for `task`: `vb` is rooted at the checkpoint (the base model under `model.` in a
/// `Qwen3For*` checkpoint, at the root in Qwen3-Embedding's).
pub fn load(
    vb: VarBuilder,
    raw: &serde_json::Value,
    task: Task,
    answers: Option<AnswerTokens>,
) -> std::result::Result<Qwen3Network, LoadFailure> {
    let cfg: Config = serde_json::from_value(raw.clone()).map_err(|e| LoadFailure::Config(e.to_string()))?;
    cfg.check().map_err(LoadFailure::Config)?;
    let base = if vb.contains_tensor("model.embed_tokens.weight") { vb.pp("model") } else { vb.clone() };
    let encoder = Qwen3::load(&cfg, base.clone()).map_err(LoadFailure::Load)?;
    let not_servable = |reason: &str| LoadFailure::NotServable(reason.to_string());
    let head = match task {
        Task::FeatureExtraction => Head::Hidden,
        Task::FillMask => return Err(not_servable("Qwen3 is a decoder: it has no masked-LM head")),
        Task::TokenClassification => {
            if !vb.contains_tensor("score.weight") {
                return Err(not_servable("the weights have no token classifier (score.weight is missing)"));
            }
            Head::Token(super::heads::TokenHead::classifier(score(&vb, cfg.hidden_size)?))
        }
        Task::TextClassification if vb.contains_tensor("score.weight") => {
            Head::Sequence(SequenceHead::last_token(score(&vb, cfg.hidden_size)?))
        }
        Task::TextClassification => {
            let Some(AnswerTokens { yes, no }) = answers else {
                return Err(not_servable(
                    "no classifier (score.weight), and the tokenizer has no \"yes\" and \"no\" tokens to score \
                     it as a yes/no reranker (Qwen3-Reranker)",
                ));
            };
            let lm_head = if vb.contains_tensor("lm_head.weight") {
                vb.get((cfg.vocab_size, cfg.hidden_size), "lm_head.weight")
            } else if cfg.tie_word_embeddings {
                Ok(encoder.embeddings.embeddings().clone())
            } else {
                return Err(not_servable(
                    "a yes/no reranker needs the language-model head (lm_head.weight is missing)",
                ));
            }
            .map_err(LoadFailure::Load)?;
            let row = |id: u32| lm_head.i(id as usize);
            let answer = (row(yes).map_err(LoadFailure::Load)? - row(no).map_err(LoadFailure::Load)?)
                .and_then(|w| w.unsqueeze(0))
                .map_err(LoadFailure::Load)?;
            Head::Sequence(SequenceHead::last_token(Linear::new(answer, None)))
        }
    };
    let answers = matches!(task, Task::TextClassification) && !vb.contains_tensor("score.weight");
    Ok(Qwen3Network {
        encoder: EncoderKind::Padded(Box::new(encoder)),
        head,
        max_positions: cfg.max_position_embeddings,
        answers,
    })
}

/// `score` of `Qwen3ForSequenceClassification` / `ForTokenClassification` (no bias).
fn score(vb: &VarBuilder, hidden: usize) -> std::result::Result<Linear, LoadFailure> {
    let rows = vb.get_unchecked("score.weight").and_then(|w| w.dim(0)).map_err(LoadFailure::Load)?;
    linear_no_bias(hidden, rows, vb.pp("score")).map_err(LoadFailure::Load)
}

/// The last real token's state of each row: `hidden` batch × seq × width, `mask` batch × seq.
pub fn last_tokens(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let lens = mask.to_dtype(DType::U32)?.sum(D::Minus1)?.to_vec1::<u32>()?;
    let rows = lens
        .iter()
        .enumerate()
        .map(|(row, &len)| hidden.i((row, len.saturating_sub(1) as usize)))
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&rows, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_causal_mask_hides_later_positions_only() {
        let m = causal_mask(0, 3, DType::F32, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m[0], [0.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        assert_eq!(m[2], [0.0, 0.0, 0.0]);
        let rows = causal_mask(1, 3, DType::F32, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(rows, [[0.0, 0.0, f32::NEG_INFINITY], [0.0, 0.0, 0.0]]);
    }

    /// Attention a few query rows at a time gives what one whole score matrix gives.
    #[test]
    fn blocks_of_query_rows_attend_as_the_whole_matrix() {
        let dev = Device::Cpu;
        let t = |seed: f32| {
            let n = 2 * 3 * 7 * 4;
            let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
            Tensor::from_vec(v, (2, 3, 7, 4), &dev).unwrap()
        };
        let (q, k, v) = (t(0.1), t(1.3), t(2.9));
        let whole = CausalBlocks::new(7, 7, DType::F32, &dev).unwrap();
        assert_eq!(whole.blocks.len(), 1);
        let want = whole.attend(&q, &k, &v).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for rows in [1, 2, 3, 5] {
            let blocks = CausalBlocks::new(7, rows, DType::F32, &dev).unwrap();
            assert_eq!(blocks.blocks.len(), 7usize.div_ceil(rows));
            let got = blocks.attend(&q, &k, &v).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-6, "{rows} rows per block: {worst}");
        }
    }

    #[test]
    fn last_tokens_are_the_last_real_ones_of_right_padded_rows() {
        let hidden = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((2, 3, 2)).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0], [1, 1, 1]], &Device::Cpu).unwrap();
        let last = last_tokens(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(last, [[2.0, 3.0], [10.0, 11.0]]);
    }

    #[test]
    fn configs_it_cannot_run_are_refused_with_the_reason() {
        let base = serde_json::json!({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 16});
        let with = |k: &str, v: serde_json::Value| {
            let mut c = base.clone();
            c[k] = v;
            serde_json::from_value::<Config>(c).unwrap().check()
        };
        assert!(serde_json::from_value::<Config>(base.clone()).unwrap().check().is_ok());
        assert!(with("use_sliding_window", true.into()).unwrap_err().contains("sliding"));
        assert!(with("rope_scaling", serde_json::json!({"type": "yarn"})).unwrap_err().contains("rope_scaling"));
        assert!(with("num_key_value_heads", 3.into()).unwrap_err().contains("multiple"));
    }
}
