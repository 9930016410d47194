//! ModernBERT: candle-transformers' encoder behind [`Encoder`].

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::modernbert::{Config, ModernBert};

use super::{Act, Encoder, EncoderKind, LoadFailure, Loaded, PaddedBatch};

pub struct ModernBertEncoder(ModernBert);

/// `vb` is the checkpoint root: candle's ModernBERT adds the `model.` prefix itself.
pub fn load(vb: VarBuilder, raw: &serde_json::Value) -> std::result::Result<Loaded, LoadFailure> {
    let mut raw = raw.clone();
    if let Some(obj) = raw.as_object_mut() {
        // transformers calls it `norm_eps`; candle's config wants `layer_norm_eps`.
        let eps = obj.get("norm_eps").cloned().unwrap_or(1e-5.into());
        obj.entry("layer_norm_eps").or_insert(eps);
    }
    let cfg: Config = serde_json::from_value(raw.clone()).map_err(|e| LoadFailure::Config(e.to_string()))?;
    let act_name = raw.get("classifier_activation").and_then(|v| v.as_str()).unwrap_or("gelu");
    let act = Act::parse(act_name).map_err(LoadFailure::Config)?;
    let (max, eps) = (cfg.max_position_embeddings, cfg.layer_norm_eps);
    let model = ModernBert::load(vb, &cfg).map_err(LoadFailure::Load)?;
    Ok(Loaded { encoder: EncoderKind::Padded(Box::new(ModernBertEncoder(model))), max_positions: max, act, eps })
}

impl Encoder for ModernBertEncoder {
    fn forward(&self, batch: &PaddedBatch) -> Result<Tensor> {
        self.0.forward(&batch.ids, &batch.mask)
    }
}
