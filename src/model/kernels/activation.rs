//! Bias + activation in one pass over the feed-forward's `tokens × intermediate` rows, written
//! in place (f32) or straight into the next GEMM's bf16 input. Exact (erf) GELU is a branch-free
//! rational approximation of erf (Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7) with a polynomial
//! exp, which vectorizes; candle's `gelu_erf` calls scalar `erff` per element on one thread.

use multiversion::multiversion;
use multiversion::target::target_cfg_f;
use rayon::prelude::*;

use super::exp::{exp_neg, mul_add};
use super::{bf16, rows_per_task};
use crate::model::Act;

/// GELU with erf, as `transformers`' `gelu`; fused multiply-adds where `fma` (a constant: see
/// [`mul_add`]).
#[inline(always)]
pub fn gelu(x: f32, fma: bool) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2, fma))
}

/// erf(z) = sign(z) · (1 − poly(t) · exp(−z²)), t = 1 / (1 + p|z|).
#[inline(always)]
fn erf(z: f32, fma: bool) -> f32 {
    const P: f32 = 0.327_591_1;
    // Abramowitz & Stegun 7.1.26, written as published (f32 rounds them).
    #[allow(clippy::excessive_precision)]
    const A: [f32; 5] = [0.254_829_592, -0.284_496_736, 1.421_413_741, -1.453_152_027, 1.061_405_429];
    let a = z.abs();
    let t = 1.0 / mul_add(P, a, 1.0, fma);
    let poly = A[..4].iter().rev().fold(A[4], |acc, &c| mul_add(acc, t, c, fma)) * t;
    let y = mul_add(-poly, exp_neg(-a * a, fma), 1.0, fma);
    y.copysign(z)
}

/// One activation on one value (the rare ones on libm; GELU vectorized).
#[inline(always)]
fn apply(act: Act, x: f32, fma: bool) -> f32 {
    match act {
        Act::Gelu => gelu(x, fma),
        Act::GeluTanh => 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh()),
        Act::Relu => x.max(0.0),
        Act::Tanh => x.tanh(),
        Act::Silu => x / (1.0 + (-x).exp()),
    }
}

/// Applies `act` to one row plus `bias`, into the row itself or, when given, into `out`.
#[multiversion(targets = "simd")]
fn row(act: Act, x: &mut [f32], bias: &[f32], out: Option<&mut [u16]>) {
    let fma = target_cfg_f!(target_feature = "fma");
    // One loop per activation so each is a straight-line vectorizable body.
    macro_rules! each {
        ($f:expr) => {
            match out {
                Some(out) => {
                    for ((o, &v), &b) in out.iter_mut().zip(x.iter()).zip(bias) {
                        *o = bf16::from_f32($f(v + b));
                    }
                }
                None => {
                    for (v, &b) in x.iter_mut().zip(bias) {
                        *v = $f(*v + b);
                    }
                }
            }
        };
    }
    match act {
        Act::Gelu => each!(|v| gelu(v, fma)),
        other => each!(|v| apply(other, v, fma)),
    }
}

/// `x = act(x + bias)` over rows of `bias.len()`, or `out = bf16(act(x + bias))` leaving `x` as it
/// was, on the current rayon pool.
pub fn bias_act(act: Act, x: &mut [f32], bias: &[f32], out: Option<&mut [u16]>) {
    let width = bias.len();
    assert!(width > 0 && x.len() % width == 0, "bias_act: {} values in rows of {width}", x.len());
    let min = rows_per_task(width);
    match out {
        Some(out) => {
            assert_eq!(out.len(), x.len());
            x.par_chunks_mut(width)
                .zip(out.par_chunks_mut(width))
                .with_min_len(min)
                .for_each(|(x, o)| row(act, x, bias, Some(o)));
        }
        None => x.par_chunks_mut(width).with_min_len(min).for_each(|x| row(act, x, bias, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::testing::{max_diff, random};
    use candle_core::{Device, Tensor};

    fn candle(act: Act, x: &[f32], bias: &[f32]) -> Vec<f32> {
        let rows = x.len() / bias.len();
        let t = Tensor::from_slice(x, (rows, bias.len()), &Device::Cpu).unwrap();
        let b = Tensor::from_slice(bias, bias.len(), &Device::Cpu).unwrap();
        let t = t.broadcast_add(&b).unwrap();
        let y = match act {
            Act::Gelu => t.gelu_erf(),
            Act::GeluTanh => t.gelu(),
            Act::Relu => t.relu(),
            Act::Tanh => t.tanh(),
            Act::Silu => t.silu(),
        };
        y.unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn matches_candle_in_f32_and_bf16() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (rows, width) = (37, 300);
        let bias = random(width, 2, 1.0);
        let x = random(rows * width, 1, 6.0);
        for act in [Act::Gelu, Act::GeluTanh, Act::Relu, Act::Tanh, Act::Silu] {
            let want = candle(act, &x, &bias);
            let mut ours = x.clone();
            pool.install(|| bias_act(act, &mut ours, &bias, None));
            let diff = max_diff(&want, &ours);
            assert!(diff < 2e-6, "{act:?} f32: {diff}");
            let mut out = vec![0u16; x.len()];
            let mut untouched = x.clone();
            pool.install(|| bias_act(act, &mut untouched, &bias, Some(&mut out)));
            assert_eq!(untouched, x);
            // Within one bf16 rounding of candle's f32 value (plus f32's absolute error near 0).
            for (&o, &w) in out.iter().zip(&want) {
                let got = bf16::to_f32(o);
                assert!((got - w).abs() <= w.abs() / 256.0 + 2e-6, "{act:?} bf16: {got} for {w}");
            }
        }
    }

    #[test]
    fn gelu_saturates() {
        for fma in [false, true] {
            assert_eq!(gelu(-100.0, fma), 0.0);
            assert_eq!(gelu(100.0, fma), 100.0);
        }
    }
}
