//! Exact (erf) GELU for f32 on CPU, vectorizable and spread over the cores.
//!
//! candle's `gelu_erf` calls scalar `libm::erff` per element on one thread; on MiniLM that is
//! the feed-forward's whole `tokens × 1536` activation, six times per forward pass. Here erf is a
//! branch-free rational approximation (Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7) with a
//! polynomial exp, plain arithmetic the compiler turns into SIMD, over chunks run in parallel.
//! Other dtypes and devices keep candle's kernel.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel chunk; below two chunks the op runs on the calling thread.
const CHUNK: usize = 16 * 1024;

/// GELU with erf, as `transformers`' `gelu`.
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 {
        xs.apply_op1_no_bwd(&GeluErf)
    } else {
        xs.gelu_erf()
    }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-f32"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = storage.as_slice::<f32>()?;
        let src = match layout.contiguous_offsets() {
            Some((start, end)) => &src[start..end],
            None => candle_core::bail!("gelu-erf-f32 needs a contiguous tensor"),
        };
        let mut dst = vec![0f32; src.len()];
        if src.len() < 2 * CHUNK {
            apply(src, &mut dst);
        } else {
            dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| apply(s, d));
        }
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

fn apply(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = gelu(x);
    }
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf(z) = sign(z) · (1 − poly(t) · exp(−z²)), t = 1 / (1 + p|z|).
#[inline(always)]
fn erf(z: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    #[allow(clippy::excessive_precision)] // the published coefficients, rounded by the compiler
    const A: [f32; 5] = [0.254_829_592, -0.284_496_736, 1.421_413_741, -1.453_152_027, 1.061_405_429];
    let a = z.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(z)
}

/// e^x for x ≤ 0 (clamped at −87, where it is ~1e-38): 2^n · e^r with |r| ≤ ln2/2, e^r by its
/// Taylor polynomial to degree 7 (< 2e-8), n rounded by the 1.5·2^23 trick so everything stays in
/// SIMD registers.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.max(-87.0);
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC;
    // ln 2 in two parts (Cody-Waite), so n · ln2 stays exact to f32 precision for every n.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    // n's integer value sits in the low mantissa bits of `shifted`.
    let bits = (shifted.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23;
    p * f32::from_bits(bits as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_on_its_range() {
        for i in 0..=8700 {
            let x = -(i as f32) * 1e-2;
            let rel = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            assert!(rel < 1e-6, "exp({x}): relative error {rel}");
        }
    }

    #[test]
    fn tensor_op_matches_candle() {
        // −10 … 10 in steps of 1e-4: past both ends of the interesting range, and long enough to
        // take the parallel path.
        let xs = Tensor::arange(-100_000f32, 100_000f32, &candle_core::Device::Cpu).unwrap();
        let xs = (xs * 1e-4).unwrap();
        let ours = gelu_erf(&xs).unwrap();
        let theirs = xs.gelu_erf().unwrap();
        let diff = (ours - theirs).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 2e-6, "max diff {diff}");
        assert_eq!(gelu(-100.0), 0.0);
        assert_eq!(gelu(100.0), 100.0);
    }
}
