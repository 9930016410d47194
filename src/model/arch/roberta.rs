//! RoBERTa, XLM-RoBERTa and CamemBERT: candle-transformers' XLM-R encoder behind [`Encoder`].

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::xlm_roberta::{Config, XLMRobertaModel};

use super::{Act, Encoder, EncoderKind, LoadFailure, Loaded, PaddedBatch};

pub struct Roberta(XLMRobertaModel);

pub fn load(vb: VarBuilder, raw: &serde_json::Value) -> std::result::Result<Loaded, LoadFailure> {
    let mut raw = raw.clone();
    if let Some(obj) = raw.as_object_mut() {
        obj.entry("position_embedding_type").or_insert_with(|| "absolute".into());
    }
    let cfg: Config = serde_json::from_value(raw).map_err(|e| LoadFailure::Config(e.to_string()))?;
    // Positions start after the padding index, so those first positions are not usable by tokens.
    let max = cfg.max_position_embeddings.saturating_sub(cfg.pad_token_id as usize + 1);
    let eps = cfg.layer_norm_eps;
    let model = XLMRobertaModel::new(&cfg, vb).map_err(LoadFailure::Load)?;
    Ok(Loaded { encoder: EncoderKind::Padded(Box::new(Roberta(model))), max_positions: max, act: Act::Gelu, eps })
}

impl Encoder for Roberta {
    fn forward(&self, batch: &PaddedBatch) -> Result<Tensor> {
        self.0.forward(&batch.ids, &batch.mask, &batch.type_ids, None, None, None)
    }
}
