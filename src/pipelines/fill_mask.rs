//! fill-mask: the `top_k` most likely tokens at each mask, with the completed sentence.

use serde::Serialize;

use super::{softmax, Output};
use crate::model::Matrix;
use crate::tokenize::{Encoded, TextTokenizer};

/// One candidate for a mask, as `transformers` returns it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Candidate {
    pub score: f32,
    pub token: u32,
    pub token_str: String,
    pub sequence: String,
}

/// `logits`: one vocabulary row per mask, in the order the masks appear in `encoded`.
pub fn postprocess(tokenizer: &TextTokenizer, encoded: &Encoded, logits: &Matrix, top_k: usize) -> Output {
    let mask_id = tokenizer.mask().map(|(_, id)| id);
    let positions: Vec<usize> = (0..encoded.ids.len()).filter(|&i| Some(encoded.ids[i]) == mask_id).collect();
    let single = positions.len() == 1;
    let pad = tokenizer.pad_id();
    let per_mask: Vec<Vec<Candidate>> = positions
        .iter()
        .zip(logits.iter_rows())
        .map(|(&position, row)| {
            let probs = softmax(row);
            top_indices(&probs, top_k)
                .into_iter()
                .map(|token| {
                    let mut ids = encoded.ids.clone();
                    ids[position] = token as u32;
                    ids.retain(|&id| id != pad);
                    Candidate {
                        score: probs[token],
                        token: token as u32,
                        token_str: tokenizer.decode(&[token as u32], false),
                        // For several masks the others stay visible, as `transformers` does.
                        sequence: tokenizer.decode(&ids, single),
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

/// Indices of the `k` largest values, largest first.
fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    if k == 0 {
        return Vec::new();
    }
    let by_value_desc = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    idx.select_nth_unstable_by(k - 1, by_value_desc);
    idx.truncate(k);
    idx.sort_by(by_value_desc);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_indices_are_sorted_and_capped() {
        assert_eq!(top_indices(&[0.1, 0.5, 0.2, 0.9], 2), vec![3, 1]);
        assert_eq!(top_indices(&[0.1, 0.5], 5), vec![1, 0]);
    }
}
