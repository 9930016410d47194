//! Calls into the GEMM libraries: the native ones behind cargo features (`openblas`: OpenBLAS
//! `cblas_sgemm`; `dnnl`: oneDNN `dnnl_sgemm` / `dnnl_gemm_u8s8s32`; `mkl`: MKL `cblas_sgemm`,
//! `cblas_gemm_s8u8s32` and `cblas_gemm_bf16bf16f32`, linked by candle's own `mkl` feature), and
//! the `gemm` crate's raw-pointer entry point (candle's own matmul) on strided views.
//!
//! Every function here takes Rust slices or [`MatRef`]/[`MatMut`] views, checks that they hold the
//! matrices the dimensions describe, and only then passes their pointers on. The libraries read
//! `a` and `b` and write `c` within those bounds and keep no pointer after returning, so the
//! safe wrappers are sound as long as the checks hold. Besides this module only `view.rs` (the
//! views themselves) may use `unsafe` (the crate denies it).
#![allow(unsafe_code)]

#[cfg(any(feature = "openblas", feature = "mkl"))]
mod cblas {
    pub const ROW_MAJOR: i32 = 101;
    pub const NO_TRANS: i32 = 111;
    pub const TRANS: i32 = 112;
    #[cfg(feature = "mkl")]
    pub const FIX_OFFSET: i32 = 173;
}

#[cfg(any(feature = "mkl", feature = "openblas", feature = "dnnl"))]
/// Panics unless `a` is `m × k`, `b` (the weight, `n × k`) and `c` is `m × n`.
fn check<A, B, C>(m: usize, n: usize, k: usize, a: &[A], b: &[B], c: &[C]) {
    assert!(a.len() >= m * k, "gemm: a holds {} values, needs {m} × {k}", a.len());
    assert!(b.len() >= n * k, "gemm: b holds {} values, needs {n} × {k}", b.len());
    assert!(c.len() >= m * n, "gemm: c holds {} values, needs {m} × {n}", c.len());
    assert!(m.max(n).max(k) <= i32::MAX as usize, "gemm: dimension over i32::MAX");
}

#[cfg(feature = "openblas")]
mod openblas_sys {
    extern "C" {
        #[link_name = "cblas_sgemm"]
        pub fn cblas_sgemm(
            layout: i32,
            transa: i32,
            transb: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
        pub fn openblas_set_num_threads(n: i32);
    }
}

/// `c = a · bᵀ + beta · c` with OpenBLAS (`a`: m × k, `b`: n × k, `c`: m × n, row-major).
#[cfg(feature = "openblas")]
pub fn openblas_sgemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    check(m, n, k, a, b, c);
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    // SAFETY: lengths checked above; row-major packed matrices with leading dimensions k, k, n.
    unsafe {
        openblas_sys::cblas_sgemm(
            cblas::ROW_MAJOR,
            cblas::NO_TRANS,
            cblas::TRANS,
            mi,
            ni,
            ki,
            1.0,
            a.as_ptr(),
            ki,
            b.as_ptr(),
            ki,
            beta,
            c.as_mut_ptr(),
            ni,
        )
    }
}

/// Sets OpenBLAS's thread count (it reads `OPENBLAS_NUM_THREADS` only once, at load).
#[cfg(feature = "openblas")]
pub fn openblas_set_threads(n: usize) {
    // SAFETY: a plain setter with no pointers.
    unsafe { openblas_sys::openblas_set_num_threads(n.max(1) as i32) }
}

#[cfg(feature = "dnnl")]
mod dnnl_sys {
    #[link(name = "dnnl")]
    extern "C" {
        pub fn dnnl_sgemm(
            transa: u8,
            transb: u8,
            m: i64,
            n: i64,
            k: i64,
            alpha: f32,
            a: *const f32,
            lda: i64,
            b: *const f32,
            ldb: i64,
            beta: f32,
            c: *mut f32,
            ldc: i64,
        ) -> i32;
        pub fn dnnl_gemm_u8s8s32(
            transa: u8,
            transb: u8,
            offsetc: u8,
            m: i64,
            n: i64,
            k: i64,
            alpha: f32,
            a: *const u8,
            lda: i64,
            ao: u8,
            b: *const i8,
            ldb: i64,
            bo: i8,
            beta: f32,
            c: *mut i32,
            ldc: i64,
            co: *const i32,
        ) -> i32;
    }
}

/// `c = a · bᵀ + beta · c` with oneDNN (row-major). Panics if oneDNN reports an error (it only
/// does for invalid arguments, which the checks here rule out).
#[cfg(feature = "dnnl")]
pub fn dnnl_sgemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    check(m, n, k, a, b, c);
    let (mi, ni, ki) = (m as i64, n as i64, k as i64);
    // SAFETY: lengths checked above; row-major packed matrices with leading dimensions k, k, n.
    let status = unsafe {
        dnnl_sys::dnnl_sgemm(b'N', b'T', mi, ni, ki, 1.0, a.as_ptr(), ki, b.as_ptr(), ki, beta, c.as_mut_ptr(), ni)
    };
    assert_eq!(status, 0, "dnnl_sgemm failed with status {status}");
}

/// `c = a · op(b) + beta · c` with oneDNN's `dnnl_sgemm` on the calling thread.
#[cfg(feature = "dnnl")]
pub fn dnnl_sgemm_view(a: MatRef<'_, f32>, b: MatRef<'_, f32>, b_trans: bool, mut c: MatMut<'_, f32>, beta: f32) {
    let (m, n, k) = check_views(&a, &b, b_trans, &c);
    if m == 0 || n == 0 {
        return;
    }
    let transb = if b_trans { b'T' } else { b'N' };
    let (lda, ldb, ldc) = (a.stride().max(1) as i64, b.stride().max(1) as i64, c.stride().max(1) as i64);
    // SAFETY: the views were checked to hold the matrices at their leading dimensions.
    let status = super::dnnl::serial(|| unsafe {
        dnnl_sys::dnnl_sgemm(
            b'N',
            transb,
            m as i64,
            n as i64,
            k as i64,
            1.0,
            a.as_ptr(),
            lda,
            b.as_ptr(),
            ldb,
            beta,
            c.as_mut_ptr(),
            ldc,
        )
    });
    assert_eq!(status, 0, "dnnl_sgemm failed with status {status}");
}

/// `c = a · bᵀ` in integers with oneDNN: `a` unsigned (m × k), `b` signed (n × k), `c` i32 (m × n).
#[cfg(feature = "dnnl")]
pub fn dnnl_gemm_u8s8s32(m: usize, n: usize, k: usize, a: &[u8], b: &[i8], c: &mut [i32]) {
    check(m, n, k, a, b, c);
    let (mi, ni, ki) = (m as i64, n as i64, k as i64);
    let co = [0i32];
    // SAFETY: lengths checked above; `co` is one value, as offsetc = 'F' (fixed) reads.
    let status = unsafe {
        dnnl_sys::dnnl_gemm_u8s8s32(
            b'N',
            b'T',
            b'F',
            mi,
            ni,
            ki,
            1.0,
            a.as_ptr(),
            ki,
            0,
            b.as_ptr(),
            ki,
            0,
            0.0,
            c.as_mut_ptr(),
            ni,
            co.as_ptr(),
        )
    };
    assert_eq!(status, 0, "dnnl_gemm_u8s8s32 failed with status {status}");
}

#[cfg(feature = "mkl")]
mod mkl_sys {
    // Linked by candle's `mkl` feature (intel-mkl-src, static); the LP64 interface: MKL_INT = i32.
    extern "C" {
        pub fn cblas_sgemm(
            layout: i32,
            transa: i32,
            transb: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
        pub fn cblas_gemm_s8u8s32(
            layout: i32,
            transa: i32,
            transb: i32,
            offsetc: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const u8,
            lda: i32,
            ao: i8,
            b: *const i8,
            ldb: i32,
            bo: i8,
            beta: f32,
            c: *mut i32,
            ldc: i32,
            co: *const i32,
        );
    }
}

/// `c = a · bᵀ + beta · c` with MKL (row-major).
#[cfg(feature = "mkl")]
pub fn mkl_sgemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    check(m, n, k, a, b, c);
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    // SAFETY: lengths checked above; row-major packed matrices with leading dimensions k, k, n.
    unsafe {
        mkl_sys::cblas_sgemm(
            cblas::ROW_MAJOR,
            cblas::NO_TRANS,
            cblas::TRANS,
            mi,
            ni,
            ki,
            1.0,
            a.as_ptr(),
            ki,
            b.as_ptr(),
            ki,
            beta,
            c.as_mut_ptr(),
            ni,
        )
    }
}

/// `c = a · bᵀ` in integers with MKL: in row-major layout MKL's `s8u8s32` takes `a` unsigned
/// (m × k) and `b` signed (n × k), writing i32 `c` (m × n).
#[cfg(feature = "mkl")]
pub fn mkl_gemm_u8s8s32(m: usize, n: usize, k: usize, a: &[u8], b: &[i8], c: &mut [i32]) {
    check(m, n, k, a, b, c);
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    let co = [0i32];
    // SAFETY: lengths checked above; `co` is one value, as the fixed offset reads.
    unsafe {
        mkl_sys::cblas_gemm_s8u8s32(
            cblas::ROW_MAJOR,
            cblas::NO_TRANS,
            cblas::TRANS,
            cblas::FIX_OFFSET,
            mi,
            ni,
            ki,
            1.0,
            a.as_ptr(),
            ki,
            0,
            b.as_ptr(),
            ki,
            0,
            0.0,
            c.as_mut_ptr(),
            ni,
            co.as_ptr(),
        )
    }
}

use super::view::{MatMut, MatRef};

/// Panics unless `a · op(b)` fits `c` (`op(b) = bᵀ` when `b_trans`); returns `(m, n, k)`.
fn check_views<A, B>(
    a: &MatRef<'_, A>,
    b: &MatRef<'_, B>,
    b_trans: bool,
    c: &MatMut<'_, f32>,
) -> (usize, usize, usize) {
    let (m, k) = (a.rows(), a.cols());
    let (bk, n) = if b_trans { (b.cols(), b.rows()) } else { (b.rows(), b.cols()) };
    assert_eq!(k, bk, "gemm: a is {m} × {k}, op(b) is {bk} × {n}");
    assert_eq!((c.rows(), c.cols()), (m, n), "gemm: c is {} × {}, needs {m} × {n}", c.rows(), c.cols());
    assert!(
        m.max(n).max(k).max(a.stride()).max(b.stride()).max(c.stride()) <= i32::MAX as usize,
        "gemm: dimension over i32::MAX"
    );
    (m, n, k)
}

/// `c = a · op(b) + beta · c` with the `gemm` crate on the calling thread.
pub fn crate_sgemm(a: MatRef<'_, f32>, b: MatRef<'_, f32>, b_trans: bool, mut c: MatMut<'_, f32>, beta: f32) {
    let (m, n, k) = check_views(&a, &b, b_trans, &c);
    if m == 0 || n == 0 {
        return;
    }
    // op(b) is k × n: stepping along k (rows of op(b)) and along n (its columns).
    let (rhs_rs, rhs_cs) = if b_trans { (1, b.stride() as isize) } else { (b.stride() as isize, 1) };
    // SAFETY: the views were checked to hold m × k, op(b) k × n and c m × n at their strides;
    // the gemm crate reads and writes only those elements. `dst := beta·dst + 1·lhs·rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c.stride() as isize,
            beta != 0.0,
            a.as_ptr(),
            1,
            a.stride() as isize,
            b.as_ptr(),
            rhs_cs,
            rhs_rs,
            beta,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(feature = "mkl")]
mod mkl_view_sys {
    extern "C" {
        pub fn cblas_gemm_bf16bf16f32(
            layout: i32,
            transa: i32,
            transb: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const u16,
            lda: i32,
            b: *const u16,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
        /// Sets the threads of MKL calls made from this thread (0: back to the global setting).
        pub fn MKL_Set_Num_Threads_Local(n: i32) -> i32;
    }
}

/// Runs `f` with MKL on the calling thread alone: the packed encoder splits its GEMMs over its own
/// threads, and MKL's OpenMP team would otherwise spin against them.
#[cfg(feature = "mkl")]
fn mkl_serial<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: a thread-local setter with no pointers.
    let before = unsafe { mkl_view_sys::MKL_Set_Num_Threads_Local(1) };
    let result = f();
    // SAFETY: as above; restores this thread's previous setting.
    unsafe { mkl_view_sys::MKL_Set_Num_Threads_Local(before) };
    result
}

/// `c = a · op(b) + beta · c` with MKL's `cblas_sgemm` on the calling thread.
#[cfg(feature = "mkl")]
pub fn mkl_sgemm_view(a: MatRef<'_, f32>, b: MatRef<'_, f32>, b_trans: bool, mut c: MatMut<'_, f32>, beta: f32) {
    let (m, n, k) = check_views(&a, &b, b_trans, &c);
    if m == 0 || n == 0 {
        return;
    }
    let transb = if b_trans { cblas::TRANS } else { cblas::NO_TRANS };
    let (lda, ldb, ldc) = (a.stride().max(1) as i32, b.stride().max(1) as i32, c.stride().max(1) as i32);
    // SAFETY: the views were checked to hold the matrices at their leading dimensions.
    mkl_serial(|| unsafe {
        mkl_sys::cblas_sgemm(
            cblas::ROW_MAJOR,
            cblas::NO_TRANS,
            transb,
            m as i32,
            n as i32,
            k as i32,
            1.0,
            a.as_ptr(),
            lda,
            b.as_ptr(),
            ldb,
            beta,
            c.as_mut_ptr(),
            ldc,
        )
    })
}

/// `c = a · op(b) + beta · c` with bf16 inputs (as `u16` bit patterns) and f32 accumulation and
/// output, MKL's `cblas_gemm_bf16bf16f32` on the calling thread.
#[cfg(feature = "mkl")]
pub fn mkl_bf16_gemm_view(a: MatRef<'_, u16>, b: MatRef<'_, u16>, b_trans: bool, mut c: MatMut<'_, f32>, beta: f32) {
    let (m, n, k) = check_views(&a, &b, b_trans, &c);
    if m == 0 || n == 0 {
        return;
    }
    let transb = if b_trans { cblas::TRANS } else { cblas::NO_TRANS };
    let (lda, ldb, ldc) = (a.stride().max(1) as i32, b.stride().max(1) as i32, c.stride().max(1) as i32);
    // SAFETY: the views were checked to hold the matrices at their leading dimensions.
    mkl_serial(|| unsafe {
        mkl_view_sys::cblas_gemm_bf16bf16f32(
            cblas::ROW_MAJOR,
            cblas::NO_TRANS,
            transb,
            m as i32,
            n as i32,
            k as i32,
            1.0,
            a.as_ptr(),
            lda,
            b.as_ptr(),
            ldb,
            beta,
            c.as_mut_ptr(),
            ldc,
        )
    })
}
