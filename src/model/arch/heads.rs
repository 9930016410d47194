//! Task heads (pooler + classifier, token classifier, masked-LM) on Hugging Face tensor names.

use candle_core::{IndexOp, Module, Result, Tensor};
use candle_nn::{layer_norm, linear, LayerNorm, Linear, VarBuilder};

use super::super::task::Task;
use super::super::weights::Weights;
use super::super::LoadError;
use super::Act;

/// Where each architecture keeps its base model and heads.
pub struct HeadNames {
    base_prefixes: &'static [&'static str],
    /// The dense layer between the [CLS] state and the classifier, and its activation.
    /// BERT's pooler sits under the base prefix, hence the `{base}` placeholder.
    sequence_pre: (&'static str, Act),
    sequence_classifier: &'static str,
    token_classifier: &'static str,
    mlm_dense: &'static str,
    mlm_norm: &'static str,
    mlm_decoder: &'static str,
    mlm_bias: &'static [&'static str],
    /// Whether the MLM transform uses the encoder's activation (else GELU).
    mlm_uses_encoder_act: bool,
}

impl HeadNames {
    pub fn for_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "bert" => Some(Self {
                base_prefixes: &["bert.", ""],
                sequence_pre: ("{base}pooler.dense", Act::Tanh),
                sequence_classifier: "classifier",
                token_classifier: "classifier",
                mlm_dense: "cls.predictions.transform.dense",
                mlm_norm: "cls.predictions.transform.LayerNorm",
                mlm_decoder: "cls.predictions.decoder.weight",
                mlm_bias: &["cls.predictions.bias", "cls.predictions.decoder.bias"],
                mlm_uses_encoder_act: true,
            }),
            "distilbert" => Some(Self {
                base_prefixes: &["distilbert.", ""],
                sequence_pre: ("pre_classifier", Act::Relu),
                sequence_classifier: "classifier",
                token_classifier: "classifier",
                mlm_dense: "vocab_transform",
                mlm_norm: "vocab_layer_norm",
                mlm_decoder: "vocab_projector.weight",
                mlm_bias: &["vocab_projector.bias"],
                mlm_uses_encoder_act: true,
            }),
            "roberta" | "xlm-roberta" | "camembert" => Some(Self {
                base_prefixes: &["roberta.", "camembert.", ""],
                sequence_pre: ("classifier.dense", Act::Tanh),
                sequence_classifier: "classifier.out_proj",
                token_classifier: "classifier",
                mlm_dense: "lm_head.dense",
                mlm_norm: "lm_head.layer_norm",
                mlm_decoder: "lm_head.decoder.weight",
                mlm_bias: &["lm_head.bias", "lm_head.decoder.bias"],
                mlm_uses_encoder_act: false,
            }),
            _ => None,
        }
    }

    /// The prefix of the base model's tensors in this checkpoint (`bert.`, or none for a bare `BertModel`).
    pub fn base_prefix(&self, weights: &Weights) -> String {
        self.base_prefixes
            .iter()
            .find(|p| weights.contains(&format!("{p}embeddings.word_embeddings.weight")))
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
pub fn check_task(task: Task, names: &HeadNames, prefix: &str, weights: &Weights) -> std::result::Result<(), LoadError> {
    let missing = |what: &str, name: String| LoadError::TaskNotServable {
        task: task.to_string(),
        reason: format!("the weights have no {what} ({name} is missing)"),
    };
    let embeddings = format!("{prefix}embeddings.word_embeddings.weight");
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

/// [CLS] → dense → activation → classifier.
pub struct SequenceHead {
    pre: Linear,
    pre_act: Act,
    classifier: Linear,
}

/// Transform (dense, activation, LayerNorm), then the vocabulary projection (often tied to the
/// word embeddings: checkpoints without a decoder weight reuse them).
pub struct MaskedLmHead {
    dense: Linear,
    act: Act,
    norm: LayerNorm,
    decoder: Linear,
}

/// The head a task runs on top of the encoder.
pub enum Head {
    /// Feature extraction: the hidden states themselves.
    Hidden,
    Sequence(SequenceHead),
    Token(Linear),
    MaskedLm(MaskedLmHead),
}

impl Head {
    pub fn load(
        task: Task,
        names: &HeadNames,
        prefix: &str,
        encoder_act: Act,
        eps: f64,
        num_labels: usize,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let hidden = vb.pp(format!("{prefix}embeddings.word_embeddings")).get_unchecked("weight")?.dim(1)?;
        match task {
            Task::FeatureExtraction => Ok(Self::Hidden),
            Task::TextClassification => Ok(Self::Sequence(SequenceHead {
                pre: linear(hidden, hidden, vb.pp(names.sequence_pre_name(prefix)))?,
                pre_act: names.sequence_pre.1,
                classifier: linear(hidden, num_labels, vb.pp(names.sequence_classifier))?,
            })),
            Task::TokenClassification => Ok(Self::Token(linear(hidden, num_labels, vb.pp(names.token_classifier))?)),
            Task::FillMask => {
                let embeddings = vb.pp(format!("{prefix}embeddings.word_embeddings")).get_unchecked("weight")?;
                let vocab = embeddings.dim(0)?;
                let weight = if vb.contains_tensor(names.mlm_decoder) {
                    vb.get((vocab, hidden), names.mlm_decoder)?
                } else {
                    embeddings
                };
                let bias = match names.mlm_bias.iter().find(|b| vb.contains_tensor(b)) {
                    Some(name) => vb.get(vocab, name)?,
                    None => Tensor::zeros(vocab, weight.dtype(), weight.device())?,
                };
                Ok(Self::MaskedLm(MaskedLmHead {
                    dense: linear(hidden, hidden, vb.pp(names.mlm_dense))?,
                    act: if names.mlm_uses_encoder_act { encoder_act } else { Act::Gelu },
                    norm: layer_norm(hidden, eps, vb.pp(names.mlm_norm))?,
                    decoder: Linear::new(weight, Some(bias)),
                }))
            }
        }
    }
}

impl SequenceHead {
    /// `hidden`: batch × seq × hidden → batch × labels, from the first token's state.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let first = hidden.i((.., 0))?.contiguous()?;
        let pooled = self.pre_act.forward(&self.pre.forward(&first)?)?;
        self.classifier.forward(&pooled)
    }
}

impl MaskedLmHead {
    /// `rows`: n × hidden (the states at mask positions only) → n × vocab logits.
    pub fn forward(&self, rows: &Tensor) -> Result<Tensor> {
        let xs = self.act.forward(&self.dense.forward(rows)?)?;
        self.decoder.forward(&self.norm.forward(&xs)?)
    }
}

impl SequenceHead {
    pub fn num_labels(&self) -> usize {
        self.classifier.weight().dim(0).unwrap_or(0)
    }
}

impl MaskedLmHead {
    pub fn vocab_size(&self) -> usize {
        self.decoder.weight().dim(0).unwrap_or(0)
    }
}
