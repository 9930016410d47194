//! The packed encoder's CPU kernels for everything that is not a linear layer: one op per file,
//! each fused where the data is already in cache, multi-threaded on the current rayon pool (the
//! pool the GEMMs split over too, src/model/gemm/cpu.rs), vectorizable plain arithmetic, and each
//! tested against candle's reference op on random inputs. The hot row functions are compiled for
//! AVX-512, AVX2+FMA and the baseline (`multiversion`, chosen once at run time): the crate is
//! built for plain x86-64, whose SSE2 is a quarter of an AVX-512 register.
//!
//! Rows are `tokens × width`, row-major, of a batch's tokens packed end to end (no padding).
//! bf16 values are `u16` bit patterns; the f32 → bf16 conversion is fused into the kernel that
//! produces a GEMM's input.

pub mod activation;
pub mod attention;
pub mod bf16;
pub mod bias;
pub mod exp;
pub mod layer_norm;
pub mod reduce;
pub mod softmax;

/// Rows per parallel task so that one task holds at least this many elements: below it rayon's
/// hand-off costs more than the work.
const MIN_TASK_ELEMENTS: usize = 8 * 1024;

/// Minimum rows per rayon task for rows of `width` elements.
pub(crate) fn rows_per_task(width: usize) -> usize {
    (MIN_TASK_ELEMENTS / width.max(1)).max(1)
}

#[cfg(test)]
pub(crate) mod testing {
    /// Deterministic pseudo-random values in `[-scale, scale]`.
    pub fn random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// Largest absolute difference.
    pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
    }
}
