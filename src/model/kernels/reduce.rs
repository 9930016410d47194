//! Row reductions the compiler vectorizes: a float sum or max over one accumulator is a serial
//! chain it may not reorder, so these keep `LANES` independent accumulators (one AVX-512
//! register, two AVX2 ones) and combine them at the end. Inlined into the multiversioned kernels,
//! so they take the caller's instruction set.

/// Independent accumulators per reduction.
const LANES: usize = 16;

/// Folds `x` into `LANES` accumulators with `step`, then them and the tail into one with `step`'s
/// combining form `join`.
#[inline(always)]
fn fold(x: &[f32], init: f32, step: impl Fn(f32, f32) -> f32, join: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = step(*a, v);
        }
    }
    let lanes = acc.into_iter().fold(init, &join);
    chunks.remainder().iter().fold(lanes, |a, &v| step(a, v))
}

/// Sum of `x`.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    fold(x, 0.0, |a, v| a + v, |a, b| a + b)
}

/// Sum of `(x - c)²`.
#[inline(always)]
pub fn sum_sq_dev(x: &[f32], c: f32) -> f32 {
    fold(x, 0.0, |a, v| a + (v - c) * (v - c), |a, b| a + b)
}

/// Largest value of `x` (−∞ when empty).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    fold(x, f32::NEG_INFINITY, f32::max, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::testing::random;

    #[test]
    fn match_the_serial_reductions() {
        for len in [0usize, 1, 15, 16, 17, 100, 384, 1000] {
            let x = random(len, len as u64 + 3, 4.0);
            let serial_sum: f64 = x.iter().map(|&v| v as f64).sum();
            assert!((sum(&x) as f64 - serial_sum).abs() < 1e-4, "sum of {len}");
            let mean = if len == 0 { 0.0 } else { serial_sum / len as f64 };
            let dev: f64 = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
            assert!((sum_sq_dev(&x, mean as f32) as f64 - dev).abs() < 1e-3 * dev.max(1.0), "deviation of {len}");
            assert_eq!(max(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max), "max of {len}");
        }
    }
}
