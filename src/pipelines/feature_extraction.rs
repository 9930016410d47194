//! feature-extraction: per-token hidden states, or sentence embeddings pooled as the
//! sentence-transformers files say (`1_Pooling/config.json`), optionally L2-normalized.

use serde::Deserialize;

use super::{Output, Params};
use crate::model::Matrix;

/// How token states become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// No pooling: per-token states, as the `transformers` pipeline returns them.
    None,
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
    /// The mean weighted by position (1, 2, ... from the first token), sentence-transformers'
    /// `weightedmean`.
    #[serde(rename = "weightedmean", alias = "weighted_mean")]
    WeightedMean,
    /// The last token's state (decoder embedders), sentence-transformers' `lasttoken`.
    #[serde(rename = "lasttoken", alias = "last_token", alias = "last-token")]
    LastToken,
    /// SPLADE sparse embeddings of a masked-LM: `max over tokens of log(1 + relu(logits))`, the
    /// non-zero vocabulary weights only. A model serves it or the dense modes, never both.
    Splade,
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::Max => "max",
            Self::MeanSqrtLen => "mean_sqrt_len",
            Self::WeightedMean => "weightedmean",
            Self::LastToken => "lasttoken",
            Self::Splade => "splade",
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            Self::None,
            Self::Mean,
            Self::Cls,
            Self::Max,
            Self::MeanSqrtLen,
            Self::WeightedMean,
            Self::LastToken,
            Self::Splade,
        ];
        let name = match s.trim() {
            "last-token" | "last_token" => "lasttoken",
            "weighted_mean" => "weightedmean",
            other => other,
        };
        all.into_iter().find(|p| p.as_str() == name).ok_or_else(|| {
            format!(
                "unknown pooling {s:?}: expected none, mean, cls, max, mean_sqrt_len, weightedmean, lasttoken or splade"
            )
        })
    }
}

/// One weight of a sparse (SPLADE) embedding, as TEI's `/embed_sparse` returns it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SparseValue {
    /// The token id (an index into the vocabulary).
    pub index: u32,
    pub value: f32,
}

/// `1_SpladePooling/config.json` of a sentence-transformers `SparseEncoder` (the loader reads it).
#[derive(Debug, Deserialize)]
pub struct SpladeConfig {
    #[serde(default = "default_splade_strategy")]
    pub pooling_strategy: String,
    #[serde(default = "default_splade_activation")]
    pub activation_function: String,
}

fn default_splade_strategy() -> String {
    "max".into()
}

fn default_splade_activation() -> String {
    "relu".into()
}

impl SpladeConfig {
    /// The settings this server implements: max over tokens of log(1 + relu).
    pub fn check(&self) -> Result<(), String> {
        if self.pooling_strategy != "max" || self.activation_function != "relu" {
            return Err(format!(
                "SPLADE pooling_strategy {:?} with activation_function {:?} is not supported (only max with relu)",
                self.pooling_strategy, self.activation_function
            ));
        }
        Ok(())
    }
}

/// The model's sentence-embedding recipe, used by the embedding routes (`/embed`,
/// `/v1/embeddings`) and as the normalization default of `/predict` with `pooling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolingDefaults {
    pub pooling: Pooling,
    pub normalize: bool,
    /// `include_prompt` of the pooling config: false leaves the prompt's tokens out of pooling.
    pub include_prompt: bool,
}

impl Default for PoolingDefaults {
    fn default() -> Self {
        Self { pooling: Pooling::Mean, normalize: false, include_prompt: true }
    }
}

/// `1_Pooling/config.json` of a sentence-transformers model (the loader reads it).
#[derive(Debug, Default, Deserialize)]
pub struct PoolingConfig {
    #[serde(default)]
    pub pooling_mode_cls_token: bool,
    #[serde(default)]
    pub pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pub pooling_mode_max_tokens: bool,
    #[serde(default)]
    pub pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pub pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pub pooling_mode_lasttoken: bool,
    /// sentence-transformers 5's form: one mode name (`"lasttoken"`) or a list of them.
    #[serde(default)]
    pub pooling_mode: Option<serde_json::Value>,
    #[serde(default = "yes")]
    pub include_prompt: bool,
}

fn yes() -> bool {
    true
}

/// One entry of a sentence-transformers `modules.json`.
#[derive(Debug, Deserialize)]
pub struct ModuleEntry {
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The module's folder, relative to the model folder (`1_SpladePooling`).
    #[serde(default)]
    pub path: String,
}

/// The pooling config enables no mode this server implements.
#[derive(Debug, thiserror::Error)]
#[error("no supported pooling mode is enabled")]
pub struct NoPoolingMode;

impl PoolingDefaults {
    /// The recipe from `1_Pooling/config.json` and `modules.json` (a `Normalize` module means
    /// normalized embeddings); without them, mean pooling without normalization.
    pub fn from_configs(
        pooling: Option<&PoolingConfig>,
        modules: Option<&[ModuleEntry]>,
    ) -> Result<Self, NoPoolingMode> {
        let splade = modules.is_some_and(|list| list.iter().any(|m| m.kind.ends_with("SpladePooling")));
        let named = pooling.and_then(|c| c.pooling_mode.as_ref()).map(|mode| {
            let first = match mode {
                serde_json::Value::Array(modes) => modes.first().and_then(|m| m.as_str()),
                other => other.as_str(),
            };
            match first {
                Some("mean_sqrt_len_tokens") => Ok(Pooling::MeanSqrtLen),
                Some(name) => name.parse::<Pooling>().map_err(|_| NoPoolingMode),
                None => Err(NoPoolingMode),
            }
        });
        let pooling_mode = match pooling {
            _ if splade => Pooling::Splade,
            None => Pooling::Mean,
            Some(_) if named.is_some() => named.unwrap_or(Err(NoPoolingMode))?,
            Some(c) if c.pooling_mode_cls_token => Pooling::Cls,
            Some(c) if c.pooling_mode_max_tokens => Pooling::Max,
            Some(c) if c.pooling_mode_mean_sqrt_len_tokens => Pooling::MeanSqrtLen,
            Some(c) if c.pooling_mode_mean_tokens => Pooling::Mean,
            Some(c) if c.pooling_mode_weightedmean_tokens => Pooling::WeightedMean,
            Some(c) if c.pooling_mode_lasttoken => Pooling::LastToken,
            Some(_) => return Err(NoPoolingMode),
        };
        let normalize = modules.is_some_and(|list| list.iter().any(|m| m.kind.ends_with("Normalize")));
        let include_prompt = pooling.is_none_or(|c| c.include_prompt);
        Ok(Self { pooling: pooling_mode, normalize, include_prompt })
    }
}

/// A sentence-transformers `Dense` module (`2_Dense/`): `activation(weight · x + bias)`, applied
/// to the pooled vector before normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseModule {
    pub in_features: usize,
    pub out_features: usize,
    /// `out_features × in_features`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub activation: DenseActivation,
}

/// The activations a `Dense` module's `activation_function` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseActivation {
    Identity,
    Tanh,
    Relu,
    Sigmoid,
}

impl DenseActivation {
    /// From the torch class path (`torch.nn.modules.activation.Tanh`).
    pub fn parse(path: &str) -> Result<Self, String> {
        match path.rsplit('.').next().unwrap_or_default() {
            "Identity" => Ok(Self::Identity),
            "Tanh" => Ok(Self::Tanh),
            "ReLU" => Ok(Self::Relu),
            "Sigmoid" => Ok(Self::Sigmoid),
            _ => Err(format!("Dense activation_function {path:?} is not supported (Identity, Tanh, ReLU, Sigmoid)")),
        }
    }

    fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::Tanh => x.tanh(),
            Self::Relu => x.max(0.0),
            Self::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }
}

impl DenseModule {
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.weight
            .chunks_exact(self.in_features)
            .zip(&self.bias)
            .map(|(row, b)| self.activation.apply(row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + b))
            .collect()
    }
}

/// Per-token states for `pooling: none` (the default of the `transformers` pipeline), else a pooled
/// vector: pooled (without the prompt's `params.prompt_tokens` when the model's `include_prompt` is
/// false), through the Dense modules, then normalized when asked.
pub fn postprocess(hidden: &Matrix, params: &Params, defaults: &PoolingDefaults, dense: &[DenseModule]) -> Output {
    let pooling = params.pooling.unwrap_or(Pooling::None);
    if pooling == Pooling::None {
        return Output::TokenEmbeddings(vec![hidden.iter_rows().map(<[f32]>::to_vec).collect()]);
    }
    let skip = if defaults.include_prompt { 0 } else { params.prompt_tokens };
    let mut v = pool(hidden, pooling, skip);
    for module in dense {
        v = module.forward(&v);
    }
    if params.normalize.unwrap_or(defaults.normalize) {
        normalize(&mut v);
    }
    Output::Embedding(v)
}

/// Pools token states into one vector (all tokens count, special tokens included, as
/// sentence-transformers does with its attention mask).
pub fn embed(hidden: &Matrix, pooling: Pooling, normalize_it: bool) -> Vec<f32> {
    let mut v = pool(hidden, pooling, 0);
    if normalize_it {
        normalize(&mut v);
    }
    v
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Pools the token states after the first `skip` (the prompt's, for `include_prompt: false`; at
/// least the last token stays). Weighted mean weighs token `i` (from 0) by `i + 1`, counted from
/// the first token as sentence-transformers does, prompt included.
fn pool(hidden: &Matrix, pooling: Pooling, skip: usize) -> Vec<f32> {
    let skip = skip.min(hidden.rows.saturating_sub(1));
    let rows = || hidden.iter_rows().enumerate().skip(skip);
    let n = (hidden.rows - skip).max(1) as f32;
    let weighted_sum = |weight: &dyn Fn(usize) -> f32| {
        let mut acc = vec![0f32; hidden.cols];
        for (i, row) in rows() {
            let w = weight(i);
            acc.iter_mut().zip(row).for_each(|(a, x)| *a += w * x);
        }
        acc
    };
    match pooling {
        // Splade never reaches hidden states: a SPLADE model returns sparse weights from the
        // worker, and `pipelines::postprocess` refuses the mode for hidden states.
        Pooling::Cls | Pooling::None | Pooling::Splade => hidden.row(skip).to_vec(),
        Pooling::LastToken => hidden.row(hidden.rows - 1).to_vec(),
        Pooling::Mean => weighted_sum(&|_| 1.0).into_iter().map(|x| x / n).collect(),
        Pooling::MeanSqrtLen => weighted_sum(&|_| 1.0).into_iter().map(|x| x / n.sqrt()).collect(),
        Pooling::WeightedMean => {
            let total: f32 = (skip..hidden.rows).map(|i| (i + 1) as f32).sum();
            weighted_sum(&|i| (i + 1) as f32).into_iter().map(|x| x / total).collect()
        }
        Pooling::Max => {
            let mut acc = vec![f32::NEG_INFINITY; hidden.cols];
            for (_, row) in rows() {
                acc.iter_mut().zip(row).for_each(|(a, &x)| *a = a.max(x));
            }
            acc
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Matrix {
        Matrix { rows: 2, cols: 2, data: vec![1.0, 4.0, 3.0, 0.0] }
    }

    #[test]
    fn pooling_modes() {
        assert_eq!(embed(&m(), Pooling::Mean, false), vec![2.0, 2.0]);
        assert_eq!(embed(&m(), Pooling::Cls, false), vec![1.0, 4.0]);
        assert_eq!(embed(&m(), Pooling::Max, false), vec![3.0, 4.0]);
        let n = embed(&m(), Pooling::Cls, true);
        assert!((n[0] - 1.0 / 17f32.sqrt()).abs() < 1e-6);
        assert_eq!(embed(&m(), Pooling::LastToken, false), vec![3.0, 0.0]);
        // Weights 1 and 2: (1·[1, 4] + 2·[3, 0]) / 3.
        assert_eq!(embed(&m(), Pooling::WeightedMean, false), vec![7.0 / 3.0, 4.0 / 3.0]);
        // Without the first token: the second alone, whatever the mode.
        assert_eq!(pool(&m(), Pooling::Mean, 1), vec![3.0, 0.0]);
        assert_eq!(pool(&m(), Pooling::Cls, 1), vec![3.0, 0.0]);
        assert_eq!(pool(&m(), Pooling::Mean, 5), vec![3.0, 0.0], "the last token always stays");
    }

    #[test]
    fn dense_module_and_pooling_names() {
        let dense = DenseModule {
            in_features: 2,
            out_features: 1,
            weight: vec![1.0, -1.0],
            bias: vec![0.5],
            activation: DenseActivation::parse("torch.nn.modules.activation.ReLU").unwrap(),
        };
        assert_eq!(dense.forward(&[1.0, 3.0]), vec![0.0]);
        assert_eq!(dense.forward(&[3.0, 1.0]), vec![2.5]);
        assert!(DenseActivation::parse("torch.nn.modules.activation.GELU").is_err());
        assert_eq!("last-token".parse::<Pooling>().unwrap(), Pooling::LastToken);
        assert_eq!("splade".parse::<Pooling>().unwrap(), Pooling::Splade);
        let modes: PoolingConfig =
            serde_json::from_str(r#"{"pooling_mode": "weightedmean", "include_prompt": false}"#).unwrap();
        let d = PoolingDefaults::from_configs(Some(&modes), None).unwrap();
        assert_eq!((d.pooling, d.include_prompt), (Pooling::WeightedMean, false));
    }
}
