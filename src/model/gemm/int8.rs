//! int8 quantization for a native integer GEMM: weights symmetric per output channel (i8),
//! activations asymmetric per row (u8 with a zero point), i32 accumulation.
//!
//! With `x ≈ sx · (qx − zx)` per row and `w ≈ sw · qw` per output channel,
//! `y = x · wᵀ ≈ sx · sw · (qx · qwᵀ − zx · Σₖ qw) `; the integer GEMM computes `qx · qwᵀ` and the
//! column sums `Σₖ qw` are computed once at load.
//!
//! Quantizing the activations and dequantizing the result are per row, so they run on rayon's
//! pool (the worker instance's own, src/worker) instead of leaving the cores idle around the GEMM.

use rayon::prelude::*;

/// A weight matrix (`n × k`, out × in) quantized per output channel.
pub struct QuantizedWeight {
    pub values: Vec<i8>,
    /// One scale per output channel.
    pub scales: Vec<f32>,
    /// `Σₖ values[j][k]` per output channel, for the activations' zero point.
    pub colsum: Vec<i32>,
    pub n: usize,
    pub k: usize,
}

/// Activations (`m × k`) quantized per row.
pub struct QuantizedRows {
    pub values: Vec<u8>,
    pub scales: Vec<f32>,
    pub zero: Vec<i32>,
}

impl QuantizedWeight {
    /// Quantizes `w` (`n × k`) to `[-127, 127]` per row.
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k);
        let max_q = 127f32;
        let mut values = Vec::with_capacity(n * k);
        let mut scales = Vec::with_capacity(n);
        let mut colsum = Vec::with_capacity(n);
        for row in w.chunks_exact(k) {
            let amax = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            let scale = if amax > 0.0 { amax / max_q } else { 1.0 };
            let inv = 1.0 / scale;
            let start = values.len();
            values.extend(row.iter().map(|v| (v * inv).round().clamp(-max_q, max_q) as i8));
            colsum.push(values[start..].iter().map(|&q| i32::from(q)).sum());
            scales.push(scale);
        }
        Self { values, scales, colsum, n, k }
    }

    /// `y[i][j] = sx[i] · sw[j] · (acc[i][j] − zx[i] · colsum[j]) + bias[j]`, as f32 (`m × n`).
    pub fn dequantize(&self, acc: &[i32], rows: &QuantizedRows, bias: Option<&[f32]>) -> Vec<f32> {
        let n = self.n;
        let mut y = vec![0f32; acc.len()];
        y.par_chunks_exact_mut(n).zip(acc.par_chunks_exact(n)).enumerate().for_each(|(i, (out, acc))| {
            let (sx, zx) = (rows.scales[i], rows.zero[i]);
            // Zipped slices: no index to bounds-check and no branch in the loop.
            let columns = self.colsum.iter().zip(&self.scales);
            for ((y, &a), (&colsum, &sw)) in out.iter_mut().zip(acc).zip(columns) {
                *y = sx * sw * (a - zx * colsum) as f32;
            }
            if let Some(bias) = bias {
                out.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            }
        });
        y
    }
}

/// The smallest and largest value of `row`, widened to include 0, in 16 running lanes compared
/// with a select (what `minps`/`maxps` do) rather than a fold of `f32::min`, which must handle NaN.
/// Written for the compiler to vectorize; measured, the layer's rate moved by less than the noise
/// (docs/benchmarks.md, round 4): the passes around the GEMM are still its cost.
fn range_with_zero(row: &[f32]) -> (f32, f32) {
    const LANES: usize = 16;
    let (mut lo, mut hi) = ([0f32; LANES], [0f32; LANES]);
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            lo[i] = if chunk[i] < lo[i] { chunk[i] } else { lo[i] };
            hi[i] = if chunk[i] > hi[i] { chunk[i] } else { hi[i] };
        }
    }
    let lo = lo.iter().chain(tail).fold(0f32, |a, &v| if v < a { v } else { a });
    let hi = hi.iter().chain(tail).fold(0f32, |a, &v| if v > a { v } else { a });
    (lo, hi)
}

/// Quantizes `x` (`m × k`) to u8 per row, over the row's range widened to include 0.
pub fn quantize_rows(x: &[f32], m: usize, k: usize) -> QuantizedRows {
    assert_eq!(x.len(), m * k);
    let mut values = vec![0u8; m * k];
    let (scales, zero): (Vec<f32>, Vec<i32>) = x
        .par_chunks_exact(k)
        .zip(values.par_chunks_exact_mut(k))
        .map(|(row, out)| {
            let (lo, hi) = range_with_zero(row);
            let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
            let inv = 1.0 / scale;
            let z = (-lo * inv).round().clamp(0.0, 255.0);
            // v · inv + z lies in [0, 255] up to rounding; + 0.5 then the cast (clamped first, so
            // a plain conversion) rounds half up.
            for (q, &v) in out.iter_mut().zip(row) {
                *q = (v * inv + z + 0.5).clamp(0.0, 255.0) as u8;
            }
            (scale, z as i32)
        })
        .unzip();
    QuantizedRows { values, scales, zero }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer GEMM as a plain loop, then dequantized: close to the f32 product.
    #[test]
    fn quantized_product_is_close_to_f32() {
        let (m, n, k) = (5, 7, 64);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 / 50.0 - 0.7) * 1.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i * 53 % 97) as f32 / 97.0 - 0.5).collect();
        let qw = QuantizedWeight::new(&w, n, k);
        let qx = quantize_rows(&x, m, k);
        let mut acc = vec![0i32; m * n];
        for i in 0..m {
            for j in 0..n {
                acc[i * n + j] =
                    (0..k).map(|p| i32::from(qx.values[i * k + p]) * i32::from(qw.values[j * k + p])).sum();
            }
        }
        let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let y = qw.dequantize(&acc, &qx, Some(&bias));
        for i in 0..m {
            for j in 0..n {
                let exact: f32 = (0..k).map(|p| x[i * k + p] * w[j * k + p]).sum::<f32>() + bias[j];
                assert!((y[i * n + j] - exact).abs() < 0.05, "{i},{j}: {} vs {exact}", y[i * n + j]);
            }
        }
    }

    /// The lane-wise range equals a plain fold for every length around the 16 lanes, with the
    /// extremes in the lanes and in the tail.
    #[test]
    fn range_with_zero_matches_a_plain_fold() {
        for len in [1, 7, 15, 16, 17, 31, 33, 384] {
            for shift in [-3.0f32, 0.0, 2.5] {
                let row: Vec<f32> = (0..len).map(|i| ((i * 29 % 23) as f32 - 11.0) * 0.37 + shift).collect();
                let plain = row.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                assert_eq!(range_with_zero(&row), plain, "len {len}, shift {shift}");
            }
        }
    }

    #[test]
    fn constant_and_zero_rows_do_not_divide_by_zero() {
        let q = quantize_rows(&[0.0; 8], 2, 4);
        assert!(q.values.iter().all(|&v| v == 0) && q.scales.iter().all(|s| s.is_finite()));
        let w = QuantizedWeight::new(&[0.0; 4], 1, 4);
        assert_eq!(w.colsum, vec![0]);
    }
}
