//! MPNet (`MPNetModel` of `transformers`): BERT's post-LayerNorm encoder under its own tensor
//! names, RoBERTa's position ids (counted from the padding index), and a T5-style relative
//! position bias (32 buckets, shared by every layer) added to the attention scores. Runs on the
//! padded candle path.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};

use super::{attention_bias, Act, Encoder, EncoderKind, LoadFailure, Loaded, PaddedBatch};

/// `transformers` hard-codes MPNet's padding index (positions count from it).
const PADDING_IDX: u32 = 1;
/// The relative positions beyond which buckets grow no further.
const MAX_DISTANCE: i64 = 128;

fn default_buckets() -> usize {
    32
}
fn default_eps() -> f64 {
    1e-12
}

/// MPNet hyper-parameters from `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The MPNet encoder stack.
pub struct MpNet {
    word: Embedding,
    position: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    relative_bias: Embedding,
    buckets: usize,
    heads: usize,
    head_dim: usize,
    act: Act,
}

/// Loads MPNet from `vb` at the base model's prefix (`mpnet.` or none).
pub fn load(vb: VarBuilder, raw: &serde_json::Value) -> std::result::Result<Loaded, LoadFailure> {
    let cfg: Config = serde_json::from_value(raw.clone()).map_err(|e| LoadFailure::Config(e.to_string()))?;
    let act = Act::parse(&cfg.hidden_act).map_err(LoadFailure::Config)?;
    if cfg.hidden_size % cfg.num_attention_heads != 0 {
        return Err(LoadFailure::Config("hidden_size is not a multiple of num_attention_heads".into()));
    }
    let encoder = MpNet::load(vb, &cfg, act).map_err(LoadFailure::Load)?;
    // Positions start after the padding index.
    let max_positions = cfg.max_position_embeddings.saturating_sub(PADDING_IDX as usize + 1);
    Ok(Loaded { encoder: EncoderKind::Padded(Box::new(encoder)), max_positions, act, eps: cfg.layer_norm_eps })
}

impl MpNet {
    fn load(vb: VarBuilder, cfg: &Config, act: Act) -> Result<Self> {
        let h = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let attn = l.pp("attention.attn");
                Ok(Layer {
                    q: linear(h, h, attn.pp("q"))?,
                    k: linear(h, h, attn.pp("k"))?,
                    v: linear(h, h, attn.pp("v"))?,
                    o: linear(h, h, attn.pp("o"))?,
                    attention_norm: layer_norm(h, eps, l.pp("attention.LayerNorm"))?,
                    intermediate: linear(h, cfg.intermediate_size, l.pp("intermediate.dense"))?,
                    output: linear(cfg.intermediate_size, h, l.pp("output.dense"))?,
                    output_norm: layer_norm(h, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word: embedding(cfg.vocab_size, h, vb.pp("embeddings.word_embeddings"))?,
            position: embedding(cfg.max_position_embeddings, h, vb.pp("embeddings.position_embeddings"))?,
            norm: layer_norm(h, eps, vb.pp("embeddings.LayerNorm"))?,
            layers,
            relative_bias: embedding(
                cfg.relative_attention_num_buckets,
                cfg.num_attention_heads,
                vb.pp("encoder.relative_attention_bias"),
            )?,
            buckets: cfg.relative_attention_num_buckets,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            act,
        })
    }

    /// `1 × heads × seq × seq`: the learned bias of each key's position relative to the query's.
    fn position_bias(&self, seq: usize, device: &Device, dtype: DType) -> Result<Tensor> {
        let buckets: Vec<u32> = (0..seq as i64)
            .flat_map(|q| (0..seq as i64).map(move |k| (q, k)))
            .map(|(q, k)| relative_bucket(k - q, self.buckets as i64) as u32)
            .collect();
        let index = Tensor::from_vec(buckets, (seq, seq), device)?;
        self.relative_bias.forward(&index)?.permute((2, 0, 1))?.unsqueeze(0)?.to_dtype(dtype)?.contiguous()
    }

    fn layer(&self, layer: &Layer, xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        let split = |t: Tensor| t.reshape((b, s, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let q = (split(layer.q.forward(xs)?)? / (self.head_dim as f64).sqrt())?;
        let (k, v) = (split(layer.k.forward(xs)?)?, split(layer.v.forward(xs)?)?);
        let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))?;
        let attended = layer.attention_norm.forward(&(layer.o.forward(&context)? + xs)?)?;
        let inner = self.act.forward(&layer.intermediate.forward(&attended)?)?;
        layer.output_norm.forward(&(layer.output.forward(&inner)? + attended)?)
    }
}

/// T5's bidirectional bucket of a relative position (`key - query`), as `transformers`' MPNet
/// computes it: half the buckets for each direction, exact below a quarter of them, then
/// logarithmic up to [`MAX_DISTANCE`].
fn relative_bucket(relative: i64, buckets: i64) -> i64 {
    let half = buckets / 2;
    let n = -relative;
    let mut bucket = if n < 0 { half } else { 0 };
    let n = n.abs();
    let exact = half / 2;
    bucket += if n < exact {
        n
    } else {
        let scaled =
            ((n as f32 / exact as f32).ln() / (MAX_DISTANCE as f32 / exact as f32).ln() * (half - exact) as f32) as i64;
        (exact + scaled).min(half - 1)
    };
    bucket
}

impl Encoder for MpNet {
    fn forward(&self, batch: &PaddedBatch) -> Result<Tensor> {
        let (b, seq) = batch.ids.dims2()?;
        // RoBERTa's position ids: counted from the padding index over the tokens that are not it.
        let ids = batch.ids.to_vec2::<u32>()?;
        let positions: Vec<u32> = ids
            .iter()
            .flat_map(|row| {
                let mut count = 0;
                row.iter()
                    .map(move |&id| {
                        if id == PADDING_IDX {
                            PADDING_IDX
                        } else {
                            count += 1;
                            count + PADDING_IDX
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let positions = Tensor::from_vec(positions, (b, seq), batch.ids.device())?;
        let xs = (self.word.forward(&batch.ids)? + self.position.forward(&positions)?)?;
        let mut xs = self.norm.forward(&xs)?;
        let bias = attention_bias(&batch.mask, xs.dtype())?.broadcast_add(&self.position_bias(
            seq,
            xs.device(),
            xs.dtype(),
        )?)?;
        for layer in &self.layers {
            xs = self.layer(layer, &xs, &bias)?;
        }
        Ok(xs)
    }
}

#[cfg(test)]
mod tests {
    use super::relative_bucket;

    #[test]
    fn buckets_as_transformers_computes_them() {
        // torch: MPNetEncoder.relative_position_bucket(tensor([-200, -20, -9, -8, -1, 0, 1, 7, 8, 20, 200]))
        let got: Vec<i64> =
            [-200, -20, -9, -8, -1, 0, 1, 7, 8, 20, 200].iter().map(|&r| relative_bucket(r, 32)).collect();
        assert_eq!(got, vec![15, 10, 8, 8, 1, 0, 17, 23, 24, 26, 31]);
    }
}
