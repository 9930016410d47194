//! Softmax of each row in place, in f32 with the vectorized exp, optionally also written as bf16
//! for the next GEMM. Used by attention on its `len × len` scores (no mask: a packed sequence
//! attends to its own tokens only).

use multiversion::multiversion;
use multiversion::target::target_cfg_f;

use super::bf16;
use super::exp::exp_neg;
use super::reduce;

/// `row = softmax(row)`, shifted by the max as torch does; `out` gets the bf16 copy if given.
/// The exp pass has no running sum, so it vectorizes; the sum is a pass of its own.
#[multiversion(targets = "simd")]
pub fn softmax_row(row: &mut [f32], out: Option<&mut [u16]>) {
    let fma = target_cfg_f!(target_feature = "fma");
    let max = reduce::max(row);
    for v in row.iter_mut() {
        *v = exp_neg(*v - max, fma);
    }
    let inv = 1.0 / reduce::sum(row);
    match out {
        Some(out) => {
            for (o, v) in out.iter_mut().zip(row.iter_mut()) {
                *v *= inv;
                *o = bf16::from_f32(*v);
            }
        }
        None => row.iter_mut().for_each(|v| *v *= inv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::testing::{max_diff, random};
    use candle_core::{Device, Tensor};

    #[test]
    fn matches_candle() {
        let (rows, width) = (9, 257);
        let x = random(rows * width, 5, 30.0);
        let t = Tensor::from_slice(&x, (rows, width), &Device::Cpu).unwrap();
        let want: Vec<f32> = candle_nn::ops::softmax_last_dim(&t).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut ours = x.clone();
        let mut out = vec![0u16; x.len()];
        for (r, o) in ours.chunks_mut(width).zip(out.chunks_mut(width)) {
            softmax_row(r, Some(o));
        }
        assert!(max_diff(&want, &ours) < 1e-6, "{}", max_diff(&want, &ours));
        assert!(out.iter().zip(&ours).all(|(&o, &v)| o == bf16::from_f32(v)));
        for row in ours.chunks(width) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}
