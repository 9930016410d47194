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
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::Max => "max",
            Self::MeanSqrtLen => "mean_sqrt_len",
        }
    }
}

/// The model's sentence-embedding recipe, used by the embedding routes (`/embed`,
/// `/v1/embeddings`) and as the normalization default of `/predict` with `pooling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolingDefaults {
    pub pooling: Pooling,
    pub normalize: bool,
}

impl Default for PoolingDefaults {
    fn default() -> Self {
        Self { pooling: Pooling::Mean, normalize: false }
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
}

/// One entry of a sentence-transformers `modules.json`.
#[derive(Debug, Deserialize)]
pub struct ModuleEntry {
    #[serde(default, rename = "type")]
    pub kind: String,
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
        let pooling = match pooling {
            None => Pooling::Mean,
            Some(c) if c.pooling_mode_cls_token => Pooling::Cls,
            Some(c) if c.pooling_mode_max_tokens => Pooling::Max,
            Some(c) if c.pooling_mode_mean_sqrt_len_tokens => Pooling::MeanSqrtLen,
            Some(c) if c.pooling_mode_mean_tokens => Pooling::Mean,
            Some(_) => return Err(NoPoolingMode),
        };
        let normalize = modules.is_some_and(|list| list.iter().any(|m| m.kind.ends_with("Normalize")));
        Ok(Self { pooling, normalize })
    }
}

/// Per-token states for `pooling: none` (the default of the `transformers` pipeline), else a pooled vector.
pub fn postprocess(hidden: &Matrix, params: &Params, defaults: &PoolingDefaults) -> Output {
    let pooling = params.pooling.unwrap_or(Pooling::None);
    if pooling == Pooling::None {
        return Output::TokenEmbeddings(vec![hidden.iter_rows().map(<[f32]>::to_vec).collect()]);
    }
    let normalize = params.normalize.unwrap_or(defaults.normalize);
    Output::Embedding(embed(hidden, pooling, normalize))
}

/// Pools token states into one vector (all tokens count, special tokens included, as
/// sentence-transformers does with its attention mask).
pub fn embed(hidden: &Matrix, pooling: Pooling, normalize: bool) -> Vec<f32> {
    let n = hidden.rows.max(1) as f32;
    let sum = || {
        let mut acc = vec![0f32; hidden.cols];
        for row in hidden.iter_rows() {
            acc.iter_mut().zip(row).for_each(|(a, x)| *a += x);
        }
        acc
    };
    let mut v = match pooling {
        Pooling::Cls | Pooling::None => hidden.row(0).to_vec(),
        Pooling::Mean => sum().into_iter().map(|x| x / n).collect(),
        Pooling::MeanSqrtLen => sum().into_iter().map(|x| x / n.sqrt()).collect(),
        Pooling::Max => {
            let mut acc = vec![f32::NEG_INFINITY; hidden.cols];
            for row in hidden.iter_rows() {
                acc.iter_mut().zip(row).for_each(|(a, &x)| *a = a.max(x));
            }
            acc
        }
    };
    if normalize {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
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
    }
}
