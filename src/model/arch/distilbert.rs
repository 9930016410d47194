//! DistilBERT: candle-transformers' encoder behind the [`Encoder`] interface.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::distilbert::{Config, DistilBertModel};

use super::{Act, Encoder, PaddedBatch};

pub enum Error {
    Config(String),
    Load(candle_core::Error),
}

pub struct DistilBert(DistilBertModel);

/// Loads the encoder; returns it with its position limit and activation (for the MLM head).
pub fn load(vb: VarBuilder, raw: &serde_json::Value) -> std::result::Result<(DistilBert, usize, Act), Error> {
    let cfg: Config = serde_json::from_value(raw.clone()).map_err(|e| Error::Config(e.to_string()))?;
    let field = |name: &str| raw.get(name).and_then(|v| v.as_str()).map(str::to_string);
    if raw.get("sinusoidal_pos_embds").and_then(|v| v.as_bool()) == Some(true) {
        return Err(Error::Config("sinusoidal_pos_embds=true is not supported".into()));
    }
    let act = Act::parse(&field("activation").unwrap_or_else(|| "gelu".into())).map_err(Error::Config)?;
    let max = raw.get("max_position_embeddings").and_then(|v| v.as_u64()).unwrap_or(512) as usize;
    let model = DistilBertModel::load(vb, &cfg).map_err(Error::Load)?;
    Ok((DistilBert(model), max, act))
}

impl Encoder for DistilBert {
    fn forward(&self, batch: &PaddedBatch) -> Result<Tensor> {
        // candle's DistilBERT masks where the mask is 1: pass "is padding", shaped to broadcast.
        let (b, s) = batch.mask.dims2()?;
        let padding = batch.mask.eq(0u32)?.to_dtype(DType::U8)?.reshape((b, 1, 1, s))?;
        self.0.forward(&batch.ids, &padding)
    }
}
