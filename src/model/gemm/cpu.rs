//! The packed encoder's GEMMs on strided views, in f32 or bf16, on the calling thread or split
//! over the current rayon pool.
//!
//! The element-wise kernels run on the same rayon threads, so the math of a forward pass has one
//! pool: the library is always called single-threaded (MKL's OpenMP team is switched off for the
//! call) and a large GEMM is cut into one block of rows (or, for few rows, of columns) per thread.

use rayon::prelude::*;

use super::view::{MatMut, MatRef};
use super::{ffi, Backend, Bf16Support};

/// Rows per thread below which a GEMM is split by columns instead (or not at all).
const MIN_ROWS_PER_THREAD: usize = 32;
/// Columns per thread below which a GEMM with few rows runs on one thread.
const MIN_COLS_PER_THREAD: usize = 64;

/// Number format of a GEMM's inputs; accumulation and output are f32 in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// bfloat16 inputs (stored as `u16` bit patterns), f32 accumulation.
    Bf16,
}

/// The library behind the packed encoder's GEMMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuGemm {
    /// The `gemm` crate (candle's own matmul); f32 only.
    Crate,
    /// Intel MKL (feature `mkl`): f32 and bf16 (`cblas_gemm_bf16bf16f32`).
    Mkl,
    /// oneDNN (feature `dnnl`): f32 (`dnnl_sgemm`) and bf16 (its matmul primitive, src/model/gemm/dnnl.rs).
    Dnnl,
}

impl CpuGemm {
    /// The library for a resolved `--gemm` backend, if the packed encoder runs on it (OpenBLAS
    /// keeps the padded encoder: its thread pool cannot be switched off per call).
    pub fn for_backend(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Candle => Some(Self::Crate),
            Backend::Mkl if cfg!(feature = "mkl") => Some(Self::Mkl),
            Backend::Dnnl if cfg!(feature = "dnnl") => Some(Self::Dnnl),
            _ => None,
        }
    }

    /// The backend this library is.
    pub fn backend(self) -> Backend {
        match self {
            Self::Crate => Backend::Candle,
            Self::Mkl => Backend::Mkl,
            Self::Dnnl => Backend::Dnnl,
        }
    }

    /// Whether this library has a bf16 GEMM in this build and on this CPU (oneDNN's needs AVX-512).
    pub fn has_bf16(self) -> bool {
        match self {
            Self::Crate => false,
            Self::Mkl => cfg!(feature = "mkl"),
            #[cfg(feature = "dnnl")]
            Self::Dnnl => super::dnnl::has_bf16(),
            #[cfg(not(feature = "dnnl"))]
            Self::Dnnl => false,
        }
    }

    /// Whether its bf16 GEMM is faster than its f32 one on a CPU with `cpu`'s bf16 arithmetic
    /// (docs/benchmarks.md): oneDNN's wherever there is bf16 arithmetic, MKL's only with AMX (on
    /// an AMD Zen 4 it served 0.72× its f32).
    pub fn fast_bf16(self, cpu: Bf16Support) -> bool {
        self.has_bf16()
            && match self {
                Self::Dnnl => cpu != Bf16Support::None,
                Self::Mkl => cpu == Bf16Support::Amx,
                Self::Crate => false,
            }
    }

    /// The library for attention's per-head products in `precision` (skinny `len × head_dim`
    /// GEMMs on one thread each): the gemm crate in f32, whose kernels beat oneDNN's there and
    /// match MKL's (docs/benchmarks.md, round 5 on Zen 3); this library in bf16.
    pub fn per_head(self, precision: Precision) -> Self {
        match precision {
            Precision::F32 => Self::Crate,
            Precision::Bf16 => self,
        }
    }

    /// `c = a · op(b) + beta · c` in f32 on the calling thread (`op(b) = bᵀ` when `b_trans`).
    pub fn f32(self, a: MatRef<'_, f32>, b: MatRef<'_, f32>, b_trans: bool, c: MatMut<'_, f32>, beta: f32) {
        match self {
            Self::Crate => ffi::crate_sgemm(a, b, b_trans, c, beta),
            #[cfg(feature = "mkl")]
            Self::Mkl => ffi::mkl_sgemm_view(a, b, b_trans, c, beta),
            #[cfg(not(feature = "mkl"))]
            Self::Mkl => unreachable!("no MKL in this build"),
            #[cfg(feature = "dnnl")]
            Self::Dnnl => ffi::dnnl_sgemm_view(a, b, b_trans, c, beta),
            #[cfg(not(feature = "dnnl"))]
            Self::Dnnl => unreachable!("no oneDNN in this build"),
        }
    }

    /// `c = a · op(b) + beta · c` with bf16 inputs on the calling thread. Panics on a library
    /// without bf16 ([`CpuGemm::has_bf16`] is checked at load).
    pub fn bf16(self, a: MatRef<'_, u16>, b: MatRef<'_, u16>, b_trans: bool, c: MatMut<'_, f32>, beta: f32) {
        let _ = (&a, &b, b_trans, &c, beta);
        match self {
            #[cfg(feature = "mkl")]
            Self::Mkl => ffi::mkl_bf16_gemm_view(a, b, b_trans, c, beta),
            #[cfg(feature = "dnnl")]
            Self::Dnnl => super::dnnl::bf16_gemm(a, b, b_trans, c, beta),
            other => panic!("{other:?} has no bf16 GEMM in this build"),
        }
    }

    /// [`CpuGemm::f32`] split over the current rayon pool.
    pub fn par_f32(self, a: MatRef<'_, f32>, b: MatRef<'_, f32>, b_trans: bool, c: MatMut<'_, f32>, beta: f32) {
        split(a, b, b_trans, c, &|a, b, c| self.f32(a, b, b_trans, c, beta));
    }

    /// [`CpuGemm::bf16`] split over the current rayon pool.
    pub fn par_bf16(self, a: MatRef<'_, u16>, b: MatRef<'_, u16>, b_trans: bool, c: MatMut<'_, f32>, beta: f32) {
        split(a, b, b_trans, c, &|a, b, c| self.bf16(a, b, b_trans, c, beta));
    }
}

/// `c = a · Wᵀ` with a weight oneDNN reordered at load, split by rows over the current rayon pool
/// (a reordered weight cannot be cut by columns, so few rows run on one thread).
#[cfg(feature = "dnnl")]
pub fn par_packed(a: MatRef<'_, u16>, w: &super::dnnl::PackedBf16, c: MatMut<'_, f32>) {
    let threads = rayon::current_num_threads();
    let m = c.rows();
    if threads > 1 && m >= MIN_ROWS_PER_THREAD * threads {
        let per = m.div_ceil(threads);
        let mut blocks = Vec::with_capacity(threads);
        let mut rest = c;
        let mut start = 0;
        while start < m {
            let rows = per.min(m - start);
            let (block, tail) = rest.split_rows(rows);
            blocks.push((a.sub_rows(start, rows), block));
            rest = tail;
            start += rows;
        }
        blocks.into_par_iter().for_each(|(a, c)| w.gemm(a, c));
    } else {
        w.gemm(a, c);
    }
}

/// One block's GEMM: `a`, `b`, `c` of the block.
type Block<'f, T> = dyn Fn(MatRef<'_, T>, MatRef<'_, T>, MatMut<'_, f32>) + Sync + 'f;

/// Cuts `c = a · op(b)` into one block per thread: rows of `a` and `c` when there are enough
/// rows, else columns of `op(b)` and `c`, else one call.
fn split<T: Sync>(a: MatRef<'_, T>, b: MatRef<'_, T>, b_trans: bool, c: MatMut<'_, f32>, run: &Block<'_, T>) {
    let threads = rayon::current_num_threads();
    let (m, n) = (c.rows(), c.cols());
    if threads > 1 && m >= MIN_ROWS_PER_THREAD * threads {
        // Equal blocks of rows: every row is contiguous, so nothing is gained by rounding a block
        // (rounding to 8 rows split 84 rows as 48 + 36, and the step waited for the 48).
        let per = m.div_ceil(threads);
        let mut blocks = Vec::with_capacity(threads);
        let mut rest = c;
        let mut start = 0;
        while start < m {
            let rows = per.min(m - start);
            let (block, tail) = rest.split_rows(rows);
            blocks.push((a.sub_rows(start, rows), block));
            rest = tail;
            start += rows;
        }
        blocks.into_par_iter().for_each(|(a, c)| run(a, b, c));
    } else if threads > 1 && n >= MIN_COLS_PER_THREAD * threads {
        let per = n.div_ceil(threads).next_multiple_of(16);
        let mut blocks = Vec::with_capacity(threads);
        let mut rest = c;
        let mut start = 0;
        while start < n {
            let cols = per.min(n - start);
            let (block, tail) = rest.split_cols(cols);
            let b = if b_trans { b.sub_rows(start, cols) } else { b.sub_cols(start, cols) };
            blocks.push((b, block));
            rest = tail;
            start += cols;
        }
        blocks.into_par_iter().for_each(|(b, c)| run(a, b, c));
    } else {
        run(a, b, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::bf16;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// Plain triple loop: the reference.
    fn reference(a: &[f32], b: &[f32], (m, n, k): (usize, usize, usize), b_trans: bool) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * if b_trans { b[j * k + p] } else { b[p * n + j] }).sum();
            }
        }
        c
    }

    fn libraries() -> Vec<CpuGemm> {
        Backend::compiled().into_iter().filter_map(CpuGemm::for_backend).collect()
    }

    #[test]
    fn every_library_matches_the_reference_serial_and_split() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        // Shapes that take each branch of `split` on 3 threads: rows, columns, one call.
        for (m, n, k) in [(131usize, 70usize, 33usize), (5, 400, 17), (7, 9, 5)] {
            for b_trans in [true, false] {
                let (a, b) = (values(m * k, 7), values(k * n, 11));
                let want = reference(&a, &b, (m, n, k), b_trans);
                let b_view = || if b_trans { MatRef::dense(&b, n, k) } else { MatRef::dense(&b, k, n) };
                for gemm in libraries() {
                    let mut serial = vec![0f32; m * n];
                    gemm.f32(MatRef::dense(&a, m, k), b_view(), b_trans, MatMut::dense(&mut serial, m, n), 0.0);
                    let mut split = vec![1f32; m * n];
                    pool.install(|| {
                        gemm.par_f32(MatRef::dense(&a, m, k), b_view(), b_trans, MatMut::dense(&mut split, m, n), 0.0)
                    });
                    for got in [&serial, &split] {
                        let worst = want.iter().zip(got).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                        assert!(worst < 1e-4, "{gemm:?} {m}×{n}×{k} trans {b_trans}: {worst}");
                    }
                    if gemm.has_bf16() {
                        let (ab, bb) = (bf16::to_vec(&a), bf16::to_vec(&b));
                        let bb_view = if b_trans { MatRef::dense(&bb, n, k) } else { MatRef::dense(&bb, k, n) };
                        let mut got = vec![0f32; m * n];
                        pool.install(|| {
                            gemm.par_bf16(
                                MatRef::dense(&ab, m, k),
                                bb_view,
                                b_trans,
                                MatMut::dense(&mut got, m, n),
                                0.0,
                            )
                        });
                        // Against the same product of the rounded inputs, in f32.
                        let want = reference(&bf16::round_vec(&a), &bf16::round_vec(&b), (m, n, k), b_trans);
                        let worst = want.iter().zip(&got).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                        assert!(worst < 1e-3, "{gemm:?} bf16 {m}×{n}×{k}: {worst}");
                    }
                }
            }
        }
    }

    #[test]
    fn strided_blocks_are_written_in_place_and_beta_accumulates() {
        // One head's columns of a wider matrix, as attention uses them.
        let (m, k, stride) = (6usize, 4usize, 12usize);
        let wide = values(m * stride, 3);
        let a = MatRef::new(&wide[4..], m, k, stride);
        let b = MatRef::new(&wide[8..], m, k, stride);
        let mut out = vec![0.5f32; m * 10];
        for gemm in libraries() {
            out.fill(0.5);
            let (_, right) = MatMut::new(&mut out, m, 10, 10).split_cols(3);
            let (block, _) = right.split_cols(m);
            gemm.f32(a, b, true, block, 1.0);
            for i in 0..m {
                for j in 0..m {
                    let dot: f32 = (0..k).map(|p| wide[i * stride + 4 + p] * wide[j * stride + 8 + p]).sum();
                    assert!((out[i * 10 + 3 + j] - (dot + 0.5)).abs() < 1e-5, "{gemm:?}");
                }
                assert!(out[i * 10..i * 10 + 3].iter().chain(&out[i * 10 + 3 + m..(i + 1) * 10]).all(|&v| v == 0.5));
            }
        }
    }
}
