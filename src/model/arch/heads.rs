//! Task heads (pooler + classifier, token classifier, masked-LM) on Hugging Face tensor names.

use candle_core::{IndexOp, Module, Result, Tensor, D};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::super::task::Task;
use super::super::weights::Weights;
use super::super::LoadError;
use super::Act;

/// How a sequence head reduces token states to one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequencePooling {
    /// The first token ([CLS] / <s>).
    First,
    /// The mean over real tokens (ModernBERT's `classifier_pooling: mean`).
    Mean,
    /// The last real token (a decoder's: Qwen3).
    Last,
}

/// Where each architecture keeps its base model and heads.
pub struct HeadNames {
    base_prefixes: &'static [&'static str],
    /// The word embeddings under the base prefix (also the tied masked-LM decoder).
    word_embeddings: &'static str,
    /// The dense layer between the pooled state and the classifier, its activation, and the
    /// LayerNorm after it (ModernBERT). BERT's pooler sits under the base prefix: `{base}`.
    sequence_pre: (&'static str, Act),
    sequence_norm: Option<&'static str>,
    sequence_classifier: &'static str,
    /// ModernBERT runs its dense + norm head before the token classifier too.
    token_uses_head: bool,
    token_classifier: &'static str,
    mlm_dense: &'static str,
    mlm_norm: &'static str,
    mlm_decoder: &'static str,
    mlm_bias: &'static [&'static str],
    /// Whether the MLM transform uses the encoder's activation (else GELU).
    mlm_uses_encoder_act: bool,
}

const BERT_MLM: (&str, &str, &str, &[&str]) = (
    "cls.predictions.transform.dense",
    "cls.predictions.transform.LayerNorm",
    "cls.predictions.decoder.weight",
    &["cls.predictions.bias", "cls.predictions.decoder.bias"],
);

impl HeadNames {
    pub fn for_model_type(model_type: &str) -> Option<Self> {
        let bert_like = |base_prefixes, sequence_pre| Self {
            base_prefixes,
            word_embeddings: "embeddings.word_embeddings",
            sequence_pre,
            sequence_norm: None,
            sequence_classifier: "classifier",
            token_uses_head: false,
            token_classifier: "classifier",
            mlm_dense: BERT_MLM.0,
            mlm_norm: BERT_MLM.1,
            mlm_decoder: BERT_MLM.2,
            mlm_bias: BERT_MLM.3,
            mlm_uses_encoder_act: true,
        };
        match model_type {
            "bert" => Some(bert_like(&["bert.", ""], ("{base}pooler.dense", Act::Tanh))),
            "deberta-v2" => Some(bert_like(&["deberta.", ""], ("pooler.dense", Act::Gelu))),
            "distilbert" => Some(Self {
                mlm_dense: "vocab_transform",
                mlm_norm: "vocab_layer_norm",
                mlm_decoder: "vocab_projector.weight",
                mlm_bias: &["vocab_projector.bias"],
                ..bert_like(&["distilbert.", ""], ("pre_classifier", Act::Relu))
            }),
            "roberta" | "xlm-roberta" | "camembert" => Some(Self {
                sequence_classifier: "classifier.out_proj",
                mlm_dense: "lm_head.dense",
                mlm_norm: "lm_head.layer_norm",
                mlm_decoder: "lm_head.decoder.weight",
                mlm_bias: &["lm_head.bias", "lm_head.decoder.bias"],
                mlm_uses_encoder_act: false,
                ..bert_like(&["roberta.", "camembert.", ""], ("classifier.dense", Act::Tanh))
            }),
            // MPNet's heads are RoBERTa's (`classifier.dense` + `out_proj`, `lm_head`).
            "mpnet" => Some(Self {
                sequence_classifier: "classifier.out_proj",
                mlm_dense: "lm_head.dense",
                mlm_norm: "lm_head.layer_norm",
                mlm_decoder: "lm_head.decoder.weight",
                mlm_bias: &["lm_head.bias", "lm_head.decoder.bias"],
                mlm_uses_encoder_act: false,
                ..bert_like(&["mpnet.", ""], ("classifier.dense", Act::Tanh))
            }),
            // ELECTRA: RoBERTa's classification head with GELU; the generator's masked-LM head
            // projects the hidden state back to the embedding width, tied to the embeddings.
            "electra" => Some(Self {
                sequence_classifier: "classifier.out_proj",
                mlm_dense: "generator_predictions.dense",
                mlm_norm: "generator_predictions.LayerNorm",
                mlm_decoder: "generator_lm_head.weight",
                mlm_bias: &["generator_lm_head.bias"],
                mlm_uses_encoder_act: false,
                ..bert_like(&["electra.", ""], ("classifier.dense", Act::Gelu))
            }),
            "modernbert" => Some(Self {
                base_prefixes: &["model.", ""],
                word_embeddings: "embeddings.tok_embeddings",
                sequence_pre: ("head.dense", Act::Gelu),
                sequence_norm: Some("head.norm"),
                sequence_classifier: "classifier",
                token_uses_head: true,
                token_classifier: "classifier",
                mlm_dense: "head.dense",
                mlm_norm: "head.norm",
                mlm_decoder: "decoder.weight",
                mlm_bias: &["decoder.bias"],
                mlm_uses_encoder_act: true,
            }),
            _ => None,
        }
    }

    /// The prefix of the base model's tensors in this checkpoint (`bert.`, or none for a bare `BertModel`).
    pub fn base_prefix(&self, weights: &Weights) -> String {
        self.base_prefixes
            .iter()
            .find(|p| weights.contains(&format!("{p}{}.weight", self.word_embeddings)))
            .unwrap_or(&"")
            .to_string()
    }

    fn sequence_pre_name(&self, prefix: &str) -> String {
        self.sequence_pre.0.replace("{base}", prefix)
    }

    fn classifier(&self, task: Task) -> &'static str {
        if task == Task::TokenClassification {
            self.token_classifier
        } else {
            self.sequence_classifier
        }
    }
}

/// Fails with a clear reason when the weights have no head for `task`.
pub fn check_task(
    task: Task,
    names: &HeadNames,
    prefix: &str,
    weights: &Weights,
) -> std::result::Result<(), LoadError> {
    let missing = |what: &str, name: String| LoadError::TaskNotServable {
        task: task.to_string(),
        reason: format!("the weights have no {what} ({name} is missing)"),
    };
    let embeddings = format!("{prefix}{}.weight", names.word_embeddings);
    if !weights.contains(&embeddings) {
        return Err(LoadError::WeightsMismatch(format!("{embeddings} is missing: not a {prefix}encoder checkpoint")));
    }
    match task {
        Task::FeatureExtraction => Ok(()),
        Task::FillMask => {
            let dense = format!("{}.weight", names.mlm_dense);
            if weights.contains(&dense) {
                Ok(())
            } else {
                Err(missing("masked-LM head", dense))
            }
        }
        Task::TextClassification | Task::TokenClassification => {
            let classifier = format!("{}.weight", names.classifier(task));
            if !weights.contains(&classifier) {
                return Err(missing("classification head", classifier));
            }
            let pre = format!("{}.weight", names.sequence_pre_name(prefix));
            if task == Task::TextClassification && !weights.contains(&pre) {
                return Err(missing("classification head", pre));
            }
            Ok(())
        }
    }
}

/// Number of output classes of the classifier, when the task has one.
pub fn num_labels(task: Task, names: &HeadNames, weights: &Weights) -> usize {
    match task {
        Task::TextClassification | Task::TokenClassification => {
            weights.rows(&format!("{}.weight", names.classifier(task))).unwrap_or(0)
        }
        _ => 0,
    }
}

/// A dense layer, with its bias when the checkpoint has one.
fn dense(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((outputs, inputs), "weight")?;
    let bias = if vb.contains_tensor("bias") { Some(vb.get(outputs, "bias")?) } else { None };
    Ok(Linear::new(weight, bias))
}

/// A LayerNorm, with its bias when the checkpoint has one.
fn norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    let weight = vb.get(size, "weight")?;
    Ok(if vb.contains_tensor("bias") {
        LayerNorm::new(weight, vb.get(size, "bias")?, eps)
    } else {
        LayerNorm::new_no_bias(weight, eps)
    })
}

/// pooled state (→ dense → activation (→ LayerNorm)) → classifier.
pub struct SequenceHead {
    pooling: SequencePooling,
    transform: Option<Transform>,
    classifier: Linear,
}

/// dense → activation → optional LayerNorm, the step shared by most heads.
struct Transform {
    dense: Linear,
    act: Act,
    norm: Option<LayerNorm>,
}

impl Module for Transform {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.act.forward(&self.dense.forward(xs)?)?;
        match &self.norm {
            Some(norm) => norm.forward(&xs),
            None => Ok(xs),
        }
    }
}

/// Per-token classifier, with ModernBERT's transform before it.
pub struct TokenHead {
    transform: Option<Transform>,
    classifier: Linear,
}

/// Transform, then the vocabulary projection (often tied to the word embeddings: checkpoints
/// without a decoder weight reuse them).
pub struct MaskedLmHead {
    transform: Transform,
    decoder: Linear,
}

/// The head a task runs on top of the encoder.
pub enum Head {
    /// Feature extraction: the hidden states themselves.
    Hidden,
    Sequence(SequenceHead),
    Token(TokenHead),
    MaskedLm(MaskedLmHead),
    /// The masked-LM head over every token, pooled as SPLADE (feature-extraction).
    Splade(MaskedLmHead),
}

/// What a head needs to know about the encoder and the checkpoint's config.
pub struct HeadContext<'a> {
    pub prefix: &'a str,
    /// The encoder's output width (`hidden_size`; `None`: the embeddings' width, which may be
    /// narrower: ELECTRA).
    pub hidden: Option<usize>,
    pub encoder_act: Act,
    pub eps: f64,
    pub num_labels: usize,
    /// ModernBERT's `classifier_pooling`.
    pub pooling: SequencePooling,
}

impl Head {
    pub fn load(task: Task, names: &HeadNames, ctx: &HeadContext<'_>, vb: &VarBuilder) -> Result<Self> {
        let embeddings = vb.pp(format!("{}{}", ctx.prefix, names.word_embeddings)).get_unchecked("weight")?;
        let (vocab, width) = embeddings.dims2()?;
        let hidden = ctx.hidden.unwrap_or(width);
        // hidden → `outputs` → activation (→ LayerNorm over `outputs`).
        let transform = |name: String, act: Act, norm_name: Option<&str>, outputs: usize| -> Result<Transform> {
            Ok(Transform {
                dense: dense(hidden, outputs, vb.pp(name))?,
                act,
                norm: norm_name.map(|n| norm(outputs, ctx.eps, vb.pp(n))).transpose()?,
            })
        };
        match task {
            Task::FeatureExtraction => Ok(Self::Hidden),
            Task::TextClassification => Ok(Self::Sequence(SequenceHead {
                pooling: ctx.pooling,
                transform: Some(transform(
                    names.sequence_pre_name(ctx.prefix),
                    names.sequence_pre.1,
                    names.sequence_norm,
                    hidden,
                )?),
                classifier: dense(hidden, ctx.num_labels, vb.pp(names.sequence_classifier))?,
            })),
            Task::TokenClassification => Ok(Self::Token(TokenHead {
                transform: names
                    .token_uses_head
                    .then(|| {
                        transform(
                            names.sequence_pre_name(ctx.prefix),
                            names.sequence_pre.1,
                            names.sequence_norm,
                            hidden,
                        )
                    })
                    .transpose()?,
                classifier: dense(hidden, ctx.num_labels, vb.pp(names.token_classifier))?,
            })),
            Task::FillMask => {
                let weight = if vb.contains_tensor(names.mlm_decoder) {
                    vb.get((vocab, width), names.mlm_decoder)?
                } else {
                    embeddings
                };
                let bias = match names.mlm_bias.iter().find(|b| vb.contains_tensor(b)) {
                    Some(name) => vb.get(vocab, name)?,
                    None => Tensor::zeros(vocab, weight.dtype(), weight.device())?,
                };
                let act = if names.mlm_uses_encoder_act { ctx.encoder_act } else { Act::Gelu };
                Ok(Self::MaskedLm(MaskedLmHead {
                    transform: transform(names.mlm_dense.to_string(), act, Some(names.mlm_norm), width)?,
                    decoder: Linear::new(weight, Some(bias)),
                }))
            }
        }
    }

    /// Output width: labels for classifiers, vocabulary size for masked-LM, 0 for hidden states.
    pub fn outputs(&self) -> usize {
        let rows = |l: &Linear| l.weight().dim(0).unwrap_or(0);
        match self {
            Self::Hidden => 0,
            Self::Sequence(h) => rows(&h.classifier),
            Self::Token(h) => rows(&h.classifier),
            Self::MaskedLm(h) | Self::Splade(h) => rows(&h.decoder),
        }
    }
}

impl SequenceHead {
    /// The classifier straight on the last real token's state (a decoder's head).
    pub fn last_token(classifier: Linear) -> Self {
        Self { pooling: SequencePooling::Last, transform: None, classifier }
    }

    /// `hidden`: batch × seq × hidden, `mask`: batch × seq (1 = real token) → batch × labels.
    pub fn forward(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let pooled = match self.pooling {
            SequencePooling::First => hidden.i((.., 0))?.contiguous()?,
            SequencePooling::Mean => {
                let mask = mask.to_dtype(hidden.dtype())?;
                let summed = hidden.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;
                summed.broadcast_div(&mask.sum_keepdim(1)?)?
            }
            SequencePooling::Last => super::qwen3::last_tokens(hidden, mask)?,
        };
        match &self.transform {
            Some(t) => self.classifier.forward(&t.forward(&pooled)?),
            None => self.classifier.forward(&pooled),
        }
    }
}

impl TokenHead {
    /// The classifier alone on every token's state.
    pub fn classifier(classifier: Linear) -> Self {
        Self { transform: None, classifier }
    }

    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        match &self.transform {
            Some(t) => self.classifier.forward(&t.forward(hidden)?),
            None => self.classifier.forward(hidden),
        }
    }
}

impl MaskedLmHead {
    /// `rows`: n × hidden (the states at mask positions only) → n × vocab logits.
    pub fn forward(&self, rows: &Tensor) -> Result<Tensor> {
        self.decoder.forward(&self.transform.forward(rows)?)
    }
}
