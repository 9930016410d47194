//! The post-LayerNorm transformer encoder of BERT, of DistilBERT under its own tensor names, and of
//! ELECTRA (BERT's names under `electra.`, with embeddings that may be narrower than the encoder and
//! projected up to it by `embeddings_project`).
//!
//! DistilBERT runs here rather than through candle-transformers: candle's DistilBERT uses the tanh
//! approximation of GELU where `transformers` uses the exact one, which moved scores by 2e-4 in the
//! golden tests.

use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};

use super::super::gemm::{Dense, LinearOptions};
use super::super::hf_config::ELECTRA_EMBEDDING_SIZE;
use super::{attention_bias, Act, Encoder, LoadFailure, Loaded, PaddedBatch};

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_type() -> String {
    "absolute".into()
}

/// BERT hyper-parameters from `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
    /// ELECTRA's embedding width; `None`: `hidden_size`.
    #[serde(default)]
    pub embedding_size: Option<usize>,
}

impl Config {
    /// The width of the token, position and type embeddings.
    pub fn embedding_width(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }
}

/// Loads BERT or DistilBERT (`model_type`) from `vb` at the base model's prefix.
pub fn load(
    vb: VarBuilder,
    raw: &serde_json::Value,
    model_type: &str,
    linear: &LinearOptions,
) -> std::result::Result<Loaded, LoadFailure> {
    let (cfg, layout) = config(raw, model_type)?;
    let act = Act::parse(&cfg.hidden_act).map_err(LoadFailure::Config)?;
    let encoder = Bert::load(vb, &cfg, layout, linear).map_err(LoadFailure::Load)?;
    Ok(Loaded {
        encoder: super::EncoderKind::Padded(Box::new(encoder)),
        max_positions: cfg.max_position_embeddings,
        act,
        eps: cfg.layer_norm_eps,
    })
}

/// The hyper-parameters and tensor names of BERT, DistilBERT or ELECTRA (`model_type`).
pub fn config(
    raw: &serde_json::Value,
    model_type: &str,
) -> std::result::Result<(Config, &'static Layout), LoadFailure> {
    let config = |e: serde_json::Error| LoadFailure::Config(e.to_string());
    let parsed = || serde_json::from_value::<Config>(raw.clone()).map_err(config);
    match model_type {
        "distilbert" => {
            let c: DistilBertConfig = serde_json::from_value(raw.clone()).map_err(config)?;
            Ok((Config::from(c), &DISTILBERT))
        }
        "electra" => {
            let mut c = parsed()?;
            c.embedding_size = Some(c.embedding_size.unwrap_or(ELECTRA_EMBEDDING_SIZE));
            Ok((c, &ELECTRA))
        }
        _ => Ok((Config { embedding_size: None, ..parsed()? }, &BERT)),
    }
}

/// Query, key and value of layer `l` as one `3·hidden × hidden` weight and its bias, with the
/// attention scale 1/√head_dim folded into the query rows (no scaling pass over the scores).
pub fn fused_qkv(l: &VarBuilder, names: &Layout, cfg: &Config) -> Result<(Tensor, Tensor)> {
    let h = cfg.hidden_size;
    let scale = 1.0 / ((h / cfg.num_attention_heads) as f64).sqrt();
    let (q, k, v) =
        (linear(h, h, l.pp(names.query))?, linear(h, h, l.pp(names.key))?, linear(h, h, l.pp(names.value))?);
    let bias = |x: &Linear| x.bias().cloned().ok_or_else(|| candle_core::Error::msg("missing bias"));
    let weight = Tensor::cat(&[(q.weight() * scale)?, k.weight().clone(), v.weight().clone()], 0)?;
    let bias = Tensor::cat(&[(bias(&q)? * scale)?, bias(&k)?, bias(&v)?], 0)?;
    Ok((weight, bias))
}

/// Where an architecture keeps the encoder's tensors.
pub struct Layout {
    pub(super) word: &'static str,
    pub(super) position: &'static str,
    pub(super) token_type: Option<&'static str>,
    pub(super) embeddings_norm: &'static str,
    /// The linear layer from the embedding width to the hidden size (ELECTRA, when they differ).
    pub(super) embeddings_project: Option<&'static str>,
    pub(super) layers: &'static str,
    pub(super) query: &'static str,
    pub(super) key: &'static str,
    pub(super) value: &'static str,
    pub(super) attention_out: &'static str,
    pub(super) attention_norm: &'static str,
    pub(super) intermediate: &'static str,
    pub(super) output: &'static str,
    pub(super) output_norm: &'static str,
}

pub const BERT: Layout = Layout {
    word: "embeddings.word_embeddings",
    position: "embeddings.position_embeddings",
    token_type: Some("embeddings.token_type_embeddings"),
    embeddings_norm: "embeddings.LayerNorm",
    embeddings_project: None,
    layers: "encoder.layer",
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_out: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    output_norm: "output.LayerNorm",
};

pub const DISTILBERT: Layout = Layout {
    word: "embeddings.word_embeddings",
    position: "embeddings.position_embeddings",
    token_type: None,
    embeddings_norm: "embeddings.LayerNorm",
    embeddings_project: None,
    layers: "transformer.layer",
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attention_out: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    intermediate: "ffn.lin1",
    output: "ffn.lin2",
    output_norm: "output_layer_norm",
};

/// ELECTRA's discriminator and generator: BERT's names, and `embeddings_project` when the embedding
/// width differs from the hidden size.
pub const ELECTRA: Layout = Layout { embeddings_project: Some("embeddings_project"), ..BERT };

/// DistilBERT's hyper-parameters under their own names.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DistilBertConfig {
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub hidden_dim: usize,
    #[serde(default = "default_activation")]
    pub activation: String,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
}

fn default_activation() -> String {
    "gelu".into()
}

impl From<DistilBertConfig> for Config {
    fn from(c: DistilBertConfig) -> Self {
        Self {
            vocab_size: c.vocab_size,
            hidden_size: c.dim,
            num_hidden_layers: c.n_layers,
            num_attention_heads: c.n_heads,
            intermediate_size: c.hidden_dim,
            hidden_act: c.activation,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: 0,
            layer_norm_eps: 1e-12,
            position_embedding_type: if c.sinusoidal_pos_embds { "sinusoidal".into() } else { default_position_type() },
            embedding_size: None,
        }
    }
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
    norm: LayerNorm,
    /// Embedding width → hidden size (ELECTRA with `embedding_size != hidden_size`).
    project: Option<Linear>,
}

struct Layer {
    /// Query, key and value projections fused into one `hidden → 3 × hidden` matmul, with the
    /// attention scale 1/√head_dim folded into the query rows at load time (one GEMM instead of
    /// three, and no scaling pass over the `seq × seq` scores).
    /// The four linear layers run on the GEMM and precision of [`LinearOptions`].
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
}

/// The encoder stack.
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    act: Act,
}

impl Bert {
    pub fn load(vb: VarBuilder, cfg: &Config, names: &Layout, options: &LinearOptions) -> Result<Self> {
        if cfg.position_embedding_type != "absolute" {
            candle_core::bail!("position_embedding_type {:?} is not supported", cfg.position_embedding_type);
        }
        if cfg.hidden_size % cfg.num_attention_heads != 0 {
            candle_core::bail!("hidden_size is not a multiple of num_attention_heads");
        }
        let act = Act::parse(&cfg.hidden_act).map_err(candle_core::Error::msg)?;
        let (h, w) = (cfg.hidden_size, cfg.embedding_width());
        let eps = cfg.layer_norm_eps;
        let project = match names.embeddings_project {
            Some(name) if w != h => Some(linear(w, h, vb.pp(name))?),
            _ if w != h => candle_core::bail!("embedding width {w} differs from hidden_size {h}"),
            _ => None,
        };
        let embeddings = Embeddings {
            word: embedding(cfg.vocab_size, w, vb.pp(names.word))?,
            position: embedding(cfg.max_position_embeddings, w, vb.pp(names.position))?,
            token_type: names.token_type.map(|n| embedding(cfg.type_vocab_size, w, vb.pp(n))).transpose()?,
            norm: layer_norm(w, eps, vb.pp(names.embeddings_norm))?,
            project,
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("{}.{i}", names.layers));
                let (weight, qkv_bias) = fused_qkv(&l, names, cfg)?;
                let dense = |l: Linear| Dense::new(l, options);
                Ok(Layer {
                    qkv: dense(Linear::new(weight, Some(qkv_bias)))?,
                    attention_out: dense(linear(h, h, l.pp(names.attention_out))?)?,
                    attention_norm: layer_norm(h, eps, l.pp(names.attention_norm))?,
                    intermediate: dense(linear(h, cfg.intermediate_size, l.pp(names.intermediate))?)?,
                    output: dense(linear(cfg.intermediate_size, h, l.pp(names.output))?)?,
                    output_norm: layer_norm(h, eps, l.pp(names.output_norm))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings, layers, heads: cfg.num_attention_heads, head_dim: h / cfg.num_attention_heads, act })
    }

    fn embed(&self, batch: &PaddedBatch) -> Result<Tensor> {
        let (_, seq) = batch.ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, batch.ids.device())?.unsqueeze(0)?;
        let mut xs = self.embeddings.word.forward(&batch.ids)?;
        if let Some(token_type) = &self.embeddings.token_type {
            xs = (xs + token_type.forward(&batch.type_ids)?)?;
        }
        let xs = xs.broadcast_add(&self.embeddings.position.forward(&positions)?)?;
        let xs = self.embeddings.norm.forward(&xs)?;
        match &self.embeddings.project {
            Some(project) => project.forward(&xs),
            None => Ok(xs),
        }
    }

    fn layer(&self, layer: &Layer, xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        // b × s × (3 · heads · head_dim) → 3 × b × heads × s × head_dim, in one copy.
        let qkv = layer
            .qkv
            .forward(xs)?
            .reshape((b, s, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        // The scale is already in q (see `Layer::qkv`).
        let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))?;
        let attended = layer.attention_norm.forward(&(layer.attention_out.forward(&context)? + xs)?)?;
        let inner = self.act.forward(&layer.intermediate.forward(&attended)?)?;
        layer.output_norm.forward(&(layer.output.forward(&inner)? + attended)?)
    }
}

impl Encoder for Bert {
    fn forward(&self, batch: &PaddedBatch) -> Result<Tensor> {
        let mut xs = self.embed(batch)?;
        let bias = attention_bias(&batch.mask, xs.dtype())?;
        for layer in &self.layers {
            xs = self.layer(layer, &xs, &bias)?;
        }
        Ok(xs)
    }
}
