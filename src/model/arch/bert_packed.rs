//! BERT, DistilBERT and ELECTRA (embeddings as wide as the encoder) on the CPU over a batch's tokens packed end to end (`tokens × hidden`, no
//! padding): a mixed-length batch costs the sum of its lengths, not batch × longest.
//!
//! One layer is four GEMMs (fused QKV, attention output, FFN in, FFN out, on
//! src/model/gemm/cpu.rs) and three fused kernels (src/model/kernels): attention per (sequence,
//! head) reading QKV in place; residual + bias + LayerNorm; bias + GELU. In bf16 the GEMM weights
//! are stored as bf16 and every GEMM input is written as bf16 by the kernel before it, while
//! accumulation, the residual stream, LayerNorm and softmax stay f32. Buffers live per thread and
//! only grow, so a forward pass allocates nothing once warm.

use std::cell::RefCell;
use std::ops::Range;

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::bert::{self, Config, Layout};
use super::{Act, LoadFailure};
use crate::model::gemm::cpu::{CpuGemm, Precision};
use crate::model::gemm::view::{MatMut, MatRef};
use crate::model::kernels::activation::bias_act;
use crate::model::kernels::attention::{attention, Heads, Qkv};
use crate::model::kernels::layer_norm::Norm;
use crate::model::kernels::{bf16, bias};
use crate::model::ModelInput;

/// A linear layer's weight (`out × in`, Hugging Face's layout, used transposed) and bias.
struct Linear {
    weight: Weight,
    bias: Vec<f32>,
    out: usize,
    inp: usize,
}

enum Weight {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
    /// bf16, reordered once for oneDNN's matmul.
    #[cfg(feature = "dnnl")]
    Packed(crate::model::gemm::dnnl::PackedBf16),
}

/// A GEMM input in the precision the layer takes.
#[derive(Clone, Copy)]
enum Input<'a> {
    F32(&'a [f32]),
    Bf16(&'a [u16]),
}

impl Linear {
    fn load(weight: &Tensor, bias: &Tensor, gemm: CpuGemm, precision: Precision) -> Result<Self> {
        let (out, inp) = weight.dims2()?;
        let values = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let weight = match (precision, gemm) {
            (Precision::F32, _) => Weight::F32(values),
            #[cfg(feature = "dnnl")]
            (Precision::Bf16, CpuGemm::Dnnl) => Weight::Packed(
                crate::model::gemm::dnnl::PackedBf16::new(&bf16::to_vec(&values), out, inp)
                    .map_err(candle_core::Error::msg)?,
            ),
            (Precision::Bf16, _) => Weight::Bf16(bf16::to_vec(&values)),
        };
        Ok(Self { weight, bias: bias.to_dtype(DType::F32)?.to_vec1::<f32>()?, out, inp })
    }

    /// `y = x · Wᵀ` (no bias: the kernel after the GEMM adds it) for `rows` rows, split over the pool.
    fn forward(&self, gemm: CpuGemm, x: Input<'_>, rows: usize, y: &mut [f32]) {
        let y = MatMut::dense(&mut y[..rows * self.out], rows, self.out);
        match (&self.weight, x) {
            (Weight::F32(w), Input::F32(x)) => {
                gemm.par_f32(MatRef::dense(x, rows, self.inp), MatRef::dense(w, self.out, self.inp), true, y, 0.0)
            }
            (Weight::Bf16(w), Input::Bf16(x)) => {
                gemm.par_bf16(MatRef::dense(x, rows, self.inp), MatRef::dense(w, self.out, self.inp), true, y, 0.0)
            }
            #[cfg(feature = "dnnl")]
            (Weight::Packed(w), Input::Bf16(x)) => {
                crate::model::gemm::cpu::par_packed(MatRef::dense(x, rows, self.inp), w, y)
            }
            _ => unreachable!("inputs are written in the weights' precision"),
        }
    }
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The packed encoder.
pub struct PackedBert {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Option<Vec<f32>>,
    embeddings_norm: Norm,
    layers: Vec<Layer>,
    heads: Heads,
    intermediate: usize,
    vocab: usize,
    type_vocab: usize,
    max_positions: usize,
    act: Act,
    gemm: CpuGemm,
    precision: Precision,
}

/// The activations of one forward pass, kept per thread between passes.
#[derive(Default)]
struct Buffers {
    /// The residual stream, `tokens × hidden`, and its bf16 copy.
    x: Vec<f32>,
    xb: Vec<u16>,
    /// `tokens × 3·hidden`, and its bf16 copy.
    qkv: Vec<f32>,
    qkvb: Vec<u16>,
    /// Attention context, `tokens × hidden`, and its bf16 copy.
    ctx: Vec<f32>,
    ctxb: Vec<u16>,
    /// A hidden-wide GEMM output before its residual LayerNorm.
    y: Vec<f32>,
    /// `tokens × intermediate`, and its bf16 copy.
    inter: Vec<f32>,
    interb: Vec<u16>,
}

fn grow<T: Default + Clone>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

impl PackedBert {
    /// Loads the encoder from `vb` (f32 or any stored dtype; converted here) for `model_type`.
    pub fn load(
        vb: VarBuilder,
        raw: &serde_json::Value,
        model_type: &str,
        gemm: CpuGemm,
        precision: Precision,
    ) -> std::result::Result<(Self, Config), LoadFailure> {
        let (cfg, names) = bert::config(raw, model_type)?;
        let act = Act::parse(&cfg.hidden_act).map_err(LoadFailure::Config)?;
        if cfg.position_embedding_type != "absolute" {
            return Err(LoadFailure::Config(format!(
                "position_embedding_type {:?} is not supported",
                cfg.position_embedding_type
            )));
        }
        if cfg.hidden_size % cfg.num_attention_heads != 0 {
            return Err(LoadFailure::Config("hidden_size is not a multiple of num_attention_heads".into()));
        }
        if cfg.embedding_width() != cfg.hidden_size {
            return Err(LoadFailure::Config(format!(
                "embeddings of width {} projected to hidden_size {} run on the padded encoder",
                cfg.embedding_width(),
                cfg.hidden_size
            )));
        }
        if precision == Precision::Bf16 && !gemm.has_bf16() {
            return Err(LoadFailure::Config(format!("{gemm:?} has no bf16 GEMM")));
        }
        let encoder = Self::load_weights(&vb, &cfg, names, act, gemm, precision).map_err(LoadFailure::Load)?;
        Ok((encoder, cfg))
    }

    fn load_weights(
        vb: &VarBuilder,
        cfg: &Config,
        names: &Layout,
        act: Act,
        gemm: CpuGemm,
        precision: Precision,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let eps = cfg.layer_norm_eps as f32;
        let table = |name: &str, rows: usize| -> Result<Vec<f32>> {
            vb.pp(name).get((rows, h), "weight")?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
        };
        let norm = |vb: VarBuilder| -> Result<Norm> {
            let get = |n: &str| vb.get(h, n)?.to_dtype(DType::F32)?.to_vec1::<f32>();
            Ok(Norm { gamma: get("weight")?, beta: get("bias")?, eps })
        };
        let linear = |vb: VarBuilder, out: usize, inp: usize| -> Result<Linear> {
            Linear::load(&vb.get((out, inp), "weight")?, &vb.get(out, "bias")?, gemm, precision)
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("{}.{i}", names.layers));
                let (qkv_weight, qkv_bias) = bert::fused_qkv(&l, names, cfg)?;
                Ok(Layer {
                    qkv: Linear::load(&qkv_weight, &qkv_bias, gemm, precision)?,
                    attention_out: linear(l.pp(names.attention_out), h, h)?,
                    attention_norm: norm(l.pp(names.attention_norm))?,
                    intermediate: linear(l.pp(names.intermediate), cfg.intermediate_size, h)?,
                    output: linear(l.pp(names.output), h, cfg.intermediate_size)?,
                    output_norm: norm(l.pp(names.output_norm))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word: table(names.word, cfg.vocab_size)?,
            position: table(names.position, cfg.max_position_embeddings)?,
            token_type: names.token_type.map(|n| table(n, cfg.type_vocab_size)).transpose()?,
            embeddings_norm: norm(vb.pp(names.embeddings_norm))?,
            layers,
            heads: Heads { count: cfg.num_attention_heads, dim: h / cfg.num_attention_heads },
            intermediate: cfg.intermediate_size,
            vocab: cfg.vocab_size,
            type_vocab: cfg.type_vocab_size,
            max_positions: cfg.max_position_embeddings,
            act,
            gemm,
            precision,
        })
    }

    fn hidden(&self) -> usize {
        self.heads.count * self.heads.dim
    }

    /// The last hidden state of every token of `inputs`, packed in order (`tokens × hidden`).
    pub fn forward(&self, inputs: &[ModelInput<'_>]) -> Result<Vec<f32>> {
        let mut seqs = Vec::with_capacity(inputs.len());
        let mut tokens = 0;
        for input in inputs {
            if input.ids.is_empty() || input.ids.len() > self.max_positions {
                candle_core::bail!("input of {} tokens (1 to {} allowed)", input.ids.len(), self.max_positions);
            }
            seqs.push(tokens..tokens + input.ids.len());
            tokens += input.ids.len();
        }
        BUFFERS.with(|buffers| {
            let b = &mut *buffers.borrow_mut();
            self.run(inputs, &seqs, tokens, b)?;
            Ok(b.x[..tokens * self.hidden()].to_vec())
        })
    }

    fn run(&self, inputs: &[ModelInput<'_>], seqs: &[Range<usize>], t: usize, b: &mut Buffers) -> Result<()> {
        let (h, inter) = (self.hidden(), self.intermediate);
        let bf = self.precision == Precision::Bf16;
        grow(&mut b.x, t * h);
        grow(&mut b.qkv, t * 3 * h);
        grow(&mut b.ctx, t * h);
        grow(&mut b.y, t * h);
        grow(&mut b.inter, t * inter);
        if bf {
            grow(&mut b.xb, t * h);
            grow(&mut b.qkvb, t * 3 * h);
            grow(&mut b.ctxb, t * h);
            grow(&mut b.interb, t * inter);
        }
        let x = &mut b.x[..t * h];
        self.embed(inputs, x)?;
        let gemm = self.gemm;
        // Each GEMM input: the f32 buffer, or its bf16 copy that the kernel before it wrote.
        self.embeddings_norm.apply(x, None, bf16_out(bf, &mut b.xb, t * h));
        for layer in &self.layers {
            let x_in = if bf { Input::Bf16(&b.xb[..t * h]) } else { Input::F32(&b.x[..t * h]) };
            let qkv = &mut b.qkv[..t * 3 * h];
            layer.qkv.forward(gemm, x_in, t, qkv);
            // The QKV bias, added in place (f32) or on the way to the bf16 copy.
            let qkv_in = if bf {
                bias::add_into_bf16(qkv, &layer.qkv.bias, &mut b.qkvb[..t * 3 * h]);
                Qkv::Bf16(&b.qkvb[..t * 3 * h])
            } else {
                bias::add(qkv, &layer.qkv.bias);
                Qkv::F32(&b.qkv[..t * 3 * h])
            };
            let ctx = &mut b.ctx[..t * h];
            attention(gemm.per_head(self.precision), qkv_in, seqs, self.heads, ctx);
            let ctx_in = if bf {
                bf16::par_convert(ctx, &mut b.ctxb[..t * h], h);
                Input::Bf16(&b.ctxb[..t * h])
            } else {
                Input::F32(&b.ctx[..t * h])
            };
            let y = &mut b.y[..t * h];
            layer.attention_out.forward(gemm, ctx_in, t, y);
            let x = &mut b.x[..t * h];
            layer.attention_norm.apply(x, Some((y, &layer.attention_out.bias)), bf16_out(bf, &mut b.xb, t * h));
            let x_in = if bf { Input::Bf16(&b.xb[..t * h]) } else { Input::F32(&b.x[..t * h]) };
            let hidden_ff = &mut b.inter[..t * inter];
            layer.intermediate.forward(gemm, x_in, t, hidden_ff);
            bias_act(self.act, hidden_ff, &layer.intermediate.bias, bf16_out(bf, &mut b.interb, t * inter));
            let ff_in = if bf { Input::Bf16(&b.interb[..t * inter]) } else { Input::F32(&b.inter[..t * inter]) };
            let y = &mut b.y[..t * h];
            layer.output.forward(gemm, ff_in, t, y);
            let x = &mut b.x[..t * h];
            layer.output_norm.apply(x, Some((y, &layer.output.bias)), bf16_out(bf, &mut b.xb, t * h));
        }
        Ok(())
    }

    /// Word + position (+ token type) embeddings of every token into `x`.
    fn embed(&self, inputs: &[ModelInput<'_>], x: &mut [f32]) -> Result<()> {
        let h = self.hidden();
        let mut rows = x.chunks_exact_mut(h);
        for input in inputs {
            for (pos, (&id, row)) in input.ids.iter().zip(rows.by_ref()).enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    candle_core::bail!("token id {id} is outside the vocabulary of {}", self.vocab);
                }
                let word = &self.word[id * h..(id + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for ((o, &w), &p) in row.iter_mut().zip(word).zip(position) {
                    *o = w + p;
                }
                if let Some(table) = &self.token_type {
                    let ty = input.type_ids.get(pos).copied().unwrap_or(0) as usize;
                    if ty >= self.type_vocab {
                        candle_core::bail!("token type {ty} is outside the {} types", self.type_vocab);
                    }
                    row.iter_mut().zip(&table[ty * h..(ty + 1) * h]).for_each(|(o, &t)| *o += t);
                }
            }
        }
        Ok(())
    }
}

/// The bf16 copy a kernel writes when the next GEMM takes bf16.
fn bf16_out(bf: bool, v: &mut [u16], len: usize) -> Option<&mut [u16]> {
    bf.then(|| &mut v[..len])
}
