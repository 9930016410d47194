//! fill-mask: the `top_k` most likely tokens at each mask, with the completed sentence.

use serde::Serialize;

use super::Output;
use crate::tokenize::{Encoded, TextTokenizer};

/// One candidate for a mask, as `transformers` returns it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Candidate {
    pub score: f32,
    pub token: u32,
    pub token_str: String,
    pub sequence: String,
}

/// `candidates`: per mask, in the order the masks appear in `encoded`, the most likely tokens with
/// their probabilities (reduced on the worker to `top_k`).
pub fn postprocess(tokenizer: &TextTokenizer, encoded: &Encoded, candidates: &[Vec<(u32, f32)>]) -> Output {
    let mask_id = tokenizer.mask().map(|(_, id)| id);
    let positions: Vec<usize> = (0..encoded.ids.len()).filter(|&i| Some(encoded.ids[i]) == mask_id).collect();
    let single = positions.len() == 1;
    let pad = tokenizer.pad_id();
    let per_mask: Vec<Vec<Candidate>> = positions
        .iter()
        .zip(candidates)
        .map(|(&position, best)| {
            best.iter()
                .map(|&(token, score)| {
                    let mut ids = encoded.ids.clone();
                    ids[position] = token;
                    ids.retain(|&id| id != pad);
                    Candidate {
                        score,
                        token,
                        token_str: tokenizer.decode_as_transformers(&[token], false),
                        // For several masks the others stay visible, as `transformers` does.
                        sequence: tokenizer.decode_as_transformers(&ids, single),
                    }
                })
                .collect()
        })
        .collect();
    if single {
        Output::FillMask(per_mask.into_iter().next().unwrap_or_default())
    } else {
        Output::FillMaskMulti(per_mask)
    }
}
