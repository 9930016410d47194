//! The only `unsafe` in the crate: calls into the native GEMM libraries behind cargo features
//! (`openblas`: OpenBLAS `cblas_sgemm`; `dnnl`: oneDNN `dnnl_sgemm` / `dnnl_gemm_u8s8s32`;
//! `mkl`: MKL `cblas_sgemm` / `cblas_gemm_s8u8s32`, linked by candle's own `mkl` feature).
//!
//! Every function here takes Rust slices, checks that they hold the matrices the dimensions
//! describe (row-major, packed), and only then passes their pointers on. The libraries read
//! `a` and `b` and write `c` within those bounds and keep no pointer after returning, so the
//! safe wrappers are sound as long as the length checks hold. Nothing else in the crate may use
//! `unsafe` (the crate denies it; this module alone is allowed).
#![allow(unsafe_code)]

#[cfg(any(feature = "openblas", feature = "mkl"))]
mod cblas {
    pub const ROW_MAJOR: i32 = 101;
    pub const NO_TRANS: i32 = 111;
    pub const TRANS: i32 = 112;
    #[cfg(feature = "mkl")]
    pub const FIX_OFFSET: i32 = 173;
}

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
