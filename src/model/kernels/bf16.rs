//! f32 ↔ bfloat16 conversion: round to nearest even, as PyTorch and `half` do, in plain integer
//! arithmetic the compiler vectorizes. bf16 values are `u16` bit patterns.

use multiversion::multiversion;
use rayon::prelude::*;

use super::rows_per_task;

/// f32 → bf16, rounding to nearest even (NaN stays NaN except for signalling NaNs with only low
/// mantissa bits, which become infinity; the encoder never produces NaN).
#[inline(always)]
pub fn from_f32(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// bf16 → f32 (exact).
#[inline(always)]
pub fn to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Converts `src` into `dst` (same length) on the calling thread.
#[multiversion(targets = "simd")]
pub fn convert(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = from_f32(s);
    }
}

/// Converts rows of `width` on the current rayon pool.
pub fn par_convert(src: &[f32], dst: &mut [u16], width: usize) {
    assert_eq!(src.len(), dst.len());
    let chunk = rows_per_task(width) * width.max(1);
    dst.par_chunks_mut(chunk).zip(src.par_chunks(chunk)).for_each(|(d, s)| convert(s, d));
}

/// A new bf16 copy of `src`.
pub fn to_vec(src: &[f32]) -> Vec<u16> {
    src.iter().map(|&x| from_f32(x)).collect()
}

/// `src` rounded to bf16 and back (what a bf16 GEMM sees of it).
pub fn round_vec(src: &[f32]) -> Vec<f32> {
    src.iter().map(|&x| to_f32(from_f32(x))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::testing::random;

    #[test]
    fn rounds_as_half_and_candle_do() {
        let mut xs = random(100_000, 1, 1e4);
        xs.extend([0.0, -0.0, 1.0, f32::MAX, f32::MIN_POSITIVE, 1.0 + f32::EPSILON, f32::INFINITY, -f32::INFINITY]);
        // Values exactly halfway between two bf16 numbers round to the even one.
        xs.extend([f32::from_bits(0x3f80_8000), f32::from_bits(0x3f81_8000)]);
        let mut ours = vec![0u16; xs.len()];
        par_convert(&xs, &mut ours, 64);
        let t = candle_core::Tensor::new(xs.as_slice(), &candle_core::Device::Cpu).unwrap();
        let theirs = t.to_dtype(candle_core::DType::BF16).unwrap().to_vec1::<half::bf16>().unwrap();
        for ((x, o), t) in xs.iter().zip(&ours).zip(&theirs) {
            assert_eq!(*o, t.to_bits(), "{x}");
            assert_eq!(to_f32(*o), t.to_f32());
        }
        assert!(to_f32(from_f32(f32::NAN)).is_nan());
    }
}
