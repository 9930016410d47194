//! Residual + bias + LayerNorm in one pass per row: `x = LN(x + y + bias)`, where `y` is a linear
//! layer's output without its bias and `x` the residual stream, with the normalized row also
//! written as bf16 when the next GEMM takes bf16. Statistics in f32, two passes over the row
//! while it is in L1 (mean, then the centred variance, as torch).

use multiversion::multiversion;
use rayon::prelude::*;

use super::{bf16, reduce, rows_per_task};

/// LayerNorm's learned scale and shift, and its epsilon.
#[derive(Debug, Clone)]
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

/// One row: `x = LN(x + y + bias)` with `norm`'s parameters, and its bf16 copy into `out`.
#[multiversion(targets = "simd")]
fn row(norm: &Norm, x: &mut [f32], add: Option<(&[f32], &[f32])>, out: Option<&mut [u16]>) {
    let n = x.len() as f32;
    if let Some((y, bias)) = add {
        for ((v, &y), &b) in x.iter_mut().zip(y).zip(bias) {
            *v += y + b;
        }
    }
    let mean = reduce::sum(x) / n;
    let var = reduce::sum_sq_dev(x, mean) / n;
    let inv = 1.0 / (var + norm.eps).sqrt();
    for ((v, &g), &b) in x.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
        *v = (*v - mean) * inv * g + b;
    }
    if let Some(out) = out {
        bf16::convert(x, out);
    }
}

impl Norm {
    /// `x = LN(x + y + bias)` (or `LN(x)` without `add`) over rows of `gamma.len()`, on the current
    /// rayon pool; `out` gets the bf16 copy if given.
    pub fn apply(&self, x: &mut [f32], add: Option<(&[f32], &[f32])>, out: Option<&mut [u16]>) {
        let width = self.gamma.len();
        assert!(width > 0 && x.len() % width == 0, "layer norm: {} values in rows of {width}", x.len());
        let min = rows_per_task(width);
        match (add, out) {
            (Some((y, bias)), Some(out)) => x
                .par_chunks_mut(width)
                .zip(y.par_chunks(width))
                .zip(out.par_chunks_mut(width))
                .with_min_len(min)
                .for_each(|((x, y), o)| row(self, x, Some((y, bias)), Some(o))),
            (Some((y, bias)), None) => x
                .par_chunks_mut(width)
                .zip(y.par_chunks(width))
                .with_min_len(min)
                .for_each(|(x, y)| row(self, x, Some((y, bias)), None)),
            (None, Some(out)) => x
                .par_chunks_mut(width)
                .zip(out.par_chunks_mut(width))
                .with_min_len(min)
                .for_each(|(x, o)| row(self, x, None, Some(o))),
            (None, None) => x.par_chunks_mut(width).with_min_len(min).for_each(|x| row(self, x, None, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::testing::{max_diff, random};
    use candle_core::{Device, Module, Tensor};

    #[test]
    fn matches_candle_layer_norm_of_the_sum() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (rows, width) = (45, 384);
        let (x, y, bias) = (random(rows * width, 1, 3.0), random(rows * width, 2, 2.0), random(width, 3, 0.5));
        let norm = Norm { gamma: random(width, 4, 1.5), beta: random(width, 5, 0.5), eps: 1e-12 };
        let dev = Device::Cpu;
        let t = |v: &[f32]| Tensor::from_slice(v, (rows, width), &dev).unwrap();
        let sum = (t(&x) + t(&y)).unwrap().broadcast_add(&Tensor::from_slice(&bias, width, &dev).unwrap()).unwrap();
        let ln = candle_nn::LayerNorm::new(
            Tensor::from_slice(&norm.gamma, width, &dev).unwrap(),
            Tensor::from_slice(&norm.beta, width, &dev).unwrap(),
            1e-12,
        );
        let want: Vec<f32> = ln.forward(&sum).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut ours = x.clone();
        let mut out = vec![0u16; x.len()];
        pool.install(|| norm.apply(&mut ours, Some((&y, &bias)), Some(&mut out)));
        assert!(max_diff(&want, &ours) < 1e-5, "{}", max_diff(&want, &ours));
        assert!(out.iter().zip(&ours).all(|(&o, &v)| o == bf16::from_f32(v)));
        // Without the addition: LN of x alone.
        let want: Vec<f32> = ln.forward(&t(&x)).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut ours = x.clone();
        pool.install(|| norm.apply(&mut ours, None, None));
        assert!(max_diff(&want, &ours) < 1e-5);
    }
}
