//! DeBERTa-v2/v3: candle-transformers' encoder behind [`Encoder`].

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::debertav2::{Config, DebertaV2Model};

use super::{Act, Encoder, EncoderKind, LoadFailure, Loaded, PaddedBatch};

pub struct Deberta(DebertaV2Model);

pub fn load(vb: VarBuilder, raw: &serde_json::Value) -> std::result::Result<Loaded, LoadFailure> {
    let cfg: Config = serde_json::from_value(raw.clone()).map_err(|e| LoadFailure::Config(e.to_string()))?;
    let act = match &cfg.hidden_act {
        candle_transformers::models::debertav2::HiddenAct::Gelu => Act::Gelu,
        other => Act::parse(&format!("{other:?}").to_ascii_lowercase()).map_err(LoadFailure::Config)?,
    };
    let (max, eps) = (cfg.max_position_embeddings, cfg.layer_norm_eps);
    let model = DebertaV2Model::load(vb, &cfg).map_err(LoadFailure::Load)?;
    Ok(Loaded { encoder: EncoderKind::Padded(Box::new(Deberta(model))), max_positions: max, act, eps })
}

impl Encoder for Deberta {
    fn forward(&self, batch: &PaddedBatch) -> Result<Tensor> {
        let mask = batch.mask.to_dtype(DType::I64)?;
        self.0.forward(&batch.ids, Some(batch.type_ids.clone()), Some(mask))
    }
}
