//! The encoder's linear layers on the fastest GEMM this build and CPU have, in f32 or int8.
//!
//! Long inputs spend most of their time in the linear layers (QKV, attention output, FFN in and
//! out), so their GEMM decides throughput. Which library is fastest depends on the CPU
//! (docs/benchmarks.md has the table): MKL takes a slow path on AMD CPUs without AVX-512, oneDNN
//! and OpenBLAS dispatch on the ISA alone. Each native library is a cargo feature (`mkl`,
//! `openblas`, `dnnl`); the default build has only candle's own `gemm` crate and needs nothing
//! installed. [`GemmChoice::Auto`] picks among what the build has by CPU vendor and ISA, and
//! `--gemm` overrides it.
//!
//! int8 ([`Quantize::Int8`]): weights per output channel (symmetric, i8), activations per row
//! (asymmetric, u8 with a zero point, computed on the fly), i32 accumulation, dequantized to f32
//! with the bias in one pass: ONNX Runtime's dynamic quantization scheme, on oneDNN's or MKL's
//! integer GEMM. candle's Q8_0 `QMatMul` (no native library) was measured and rejected: 0.25× the
//! f32 rate here, and it swapped fill-mask top-1 on two golden inputs (docs/benchmarks.md).

pub mod cpu;
#[cfg(feature = "dnnl")]
pub mod dnnl;
mod ffi;
mod int8;
pub mod view;

use std::fmt;
use std::str::FromStr;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor};
use candle_nn::Linear;

pub use int8::{quantize_rows, QuantizedWeight};

/// Which GEMM the linear layers use, as the `--gemm` flag names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GemmChoice {
    /// The fastest this build has for this CPU (see [`GemmChoice::resolve`]).
    #[default]
    Auto,
    /// candle's matmul: the `gemm` crate, or MKL in a `mkl` build.
    Candle,
    /// Intel MKL `cblas_sgemm` / `cblas_gemm_s8u8s32` (feature `mkl`).
    Mkl,
    /// OpenBLAS `cblas_sgemm` (feature `openblas`; f32 only).
    OpenBlas,
    /// oneDNN `dnnl_sgemm` / `dnnl_gemm_u8s8s32` (feature `dnnl`).
    Dnnl,
}

/// A GEMM library this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Candle,
    Mkl,
    OpenBlas,
    Dnnl,
}

impl Backend {
    /// Every backend compiled into this build.
    pub fn compiled() -> Vec<Backend> {
        let mut all = vec![Backend::Candle];
        if cfg!(feature = "mkl") {
            all.push(Backend::Mkl);
        }
        if cfg!(feature = "openblas") {
            all.push(Backend::OpenBlas);
        }
        if cfg!(feature = "dnnl") {
            all.push(Backend::Dnnl);
        }
        all
    }

    /// Whether this backend has an integer GEMM.
    pub fn has_int8(self) -> bool {
        matches!(self, Backend::Mkl | Backend::Dnnl)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Candle => "candle",
            Self::Mkl => "mkl",
            Self::OpenBlas => "openblas",
            Self::Dnnl => "dnnl",
        })
    }
}

impl FromStr for GemmChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "candle" | "gemm" => Ok(Self::Candle),
            "mkl" => Ok(Self::Mkl),
            "openblas" => Ok(Self::OpenBlas),
            "dnnl" | "onednn" => Ok(Self::Dnnl),
            _ => Err(format!("unknown GEMM {s:?}: expected auto, candle, mkl, openblas or dnnl")),
        }
    }
}

impl fmt::Display for GemmChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Candle => f.write_str("candle"),
            Self::Mkl => f.write_str("mkl"),
            Self::OpenBlas => f.write_str("openblas"),
            Self::Dnnl => f.write_str("dnnl"),
        }
    }
}

/// Weight precision of the encoder's linear layers, as the `--quantize` flag names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantize {
    /// The model's dtype (`--dtype`), no quantization.
    #[default]
    None,
    /// int8 weights and activations in the encoder's linear layers (CPU, f32 models only).
    Int8,
}

impl FromStr for Quantize {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Self::None),
            "int8" | "i8" => Ok(Self::Int8),
            _ => Err(format!("unknown quantization {s:?}: expected none or int8")),
        }
    }
}

impl fmt::Display for Quantize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Int8 => "int8",
        })
    }
}

/// What the CPU is, as far as choosing a GEMM goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    pub intel: bool,
    pub avx512: bool,
    /// AVX-512 VNNI or AVX-VNNI: `vpdpbusd` accumulates u8 × i8 products in i32 without the i16
    /// saturation of AVX2's `vpmaddubsw`.
    pub vnni: bool,
    /// The CPU's bf16 arithmetic.
    pub bf16: Bf16Support,
}

/// What bf16 arithmetic a CPU has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Bf16Support {
    #[default]
    None,
    /// AVX512-BF16 (`vdpbf16ps`): on an Intel Xeon without AMX and on an AMD EPYC Zen 4, MKL's
    /// bf16 GEMM served *slower* than its f32 one (docs/benchmarks.md, round 5), so `--dtype auto`
    /// does not pick bf16 for it.
    Avx512,
    /// AMX-BF16 tiles: PyTorch's bf16 model step ran 3.5× its f32 one on such a Xeon.
    Amx,
}

impl Cpu {
    /// Reads the vendor and ISA flags of this machine (`/proc/cpuinfo`; elsewhere: none known).
    pub fn detect() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self::parse(&info)
    }

    fn parse(cpuinfo: &str) -> Self {
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let flags = field("flags");
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        Self {
            intel: field("vendor_id") == "GenuineIntel",
            avx512: has("avx512f") && has("avx512bw"),
            vnni: has("avx512_vnni") || has("avx_vnni"),
            bf16: if has("amx_bf16") {
                Bf16Support::Amx
            } else if has("avx512_bf16") {
                Bf16Support::Avx512
            } else {
                Bf16Support::None
            },
        }
    }
}

impl GemmChoice {
    /// The backend to use for `quantize` on `cpu`: the explicit choice if this build has it,
    /// else (for `Auto`) the fastest measured (docs/benchmarks.md):
    /// - f32: MKL on Intel and AVX-512 CPUs; on AMD with AVX2 only OpenBLAS, then oneDNN, then
    ///   MKL (slow there); candle's own matmul when the build has none;
    /// - int8: oneDNN, then MKL; none is an error (candle's Q8_0 `QMatMul`, the one int8 GEMM
    ///   without a native library, ran at 0.25× f32 and failed the quality gate).
    pub fn resolve(self, quantize: Quantize, cpu: &Cpu) -> std::result::Result<Backend, String> {
        let compiled = Backend::compiled();
        let has = |b: Backend| compiled.contains(&b);
        let explicit = match self {
            Self::Auto => None,
            Self::Candle => Some(Backend::Candle),
            Self::Mkl => Some(Backend::Mkl),
            Self::OpenBlas => Some(Backend::OpenBlas),
            Self::Dnnl => Some(Backend::Dnnl),
        };
        if let Some(b) = explicit {
            if !has(b) {
                return Err(format!("--gemm {self}: this build has no {b} (rebuild with --features {b})"));
            }
            if quantize == Quantize::Int8 && !b.has_int8() {
                return Err(format!("--gemm {self} has no int8 GEMM; use dnnl or mkl with --quantize int8"));
            }
            return Ok(b);
        }
        let order: &[Backend] = match quantize {
            // oneDNN first: MKL's integer GEMM took a slow path on AMD (0.3-0.6× f32, docs/benchmarks.md).
            Quantize::Int8 => &[Backend::Dnnl, Backend::Mkl],
            // MKL is fast on Intel and on AMD with AVX-512 (its Zen kernel); on AMD with AVX2 only
            // it takes a slow path and OpenBLAS's Haswell kernel is ~30% faster.
            Quantize::None if cpu.intel || cpu.avx512 => &[Backend::Mkl, Backend::Dnnl, Backend::OpenBlas],
            Quantize::None => &[Backend::OpenBlas, Backend::Dnnl, Backend::Mkl],
        };
        match order.iter().copied().find(|&b| has(b)) {
            Some(b) => Ok(b),
            None if quantize == Quantize::Int8 => Err(NO_INT8.into()),
            None => Ok(Backend::Candle),
        }
    }
}

const NO_INT8: &str = "--quantize int8 needs an integer GEMM, which this build lacks: rebuild with \
--features dnnl (oneDNN; scripts/onednn.sh installs it) or --features mkl";

/// How the linear layers are built: the backend resolved from [`GemmChoice`] and the precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearOptions {
    pub backend: Backend,
    pub quantize: Quantize,
}

impl Default for LinearOptions {
    fn default() -> Self {
        Self { backend: Backend::Candle, quantize: Quantize::None }
    }
}

impl LinearOptions {
    /// Resolves `gemm` and `quantize` for this machine's CPU.
    pub fn resolve(gemm: GemmChoice, quantize: Quantize) -> std::result::Result<Self, String> {
        let cpu = Cpu::detect();
        let backend = gemm.resolve(quantize, &cpu)?;
        if quantize == Quantize::Int8 {
            int8_runs_on(&cpu)?;
        }
        Ok(Self { backend, quantize })
    }
}

/// Whether `cpu` can serve `--quantize int8` at the quality gate's accuracy: only with VNNI. On
/// AVX2 alone the integer GEMMs pair u8 × i8 products in 16 bits (`vpmaddubsw`), which saturate
/// with full-range weights; weights cut to ±63 to avoid it (ONNX Runtime's reduce_range), or
/// activations cut to 7 bits, missed the gate (all-MiniLM-L6-v2 at cosine 0.991 and 0.985 per
/// token, fill-mask and NER labels changed; docs/benchmarks.md).
pub fn int8_runs_on(cpu: &Cpu) -> std::result::Result<(), String> {
    if cpu.vnni {
        return Ok(());
    }
    Err("--quantize int8 needs a CPU with AVX-512 VNNI or AVX-VNNI: without them the integer GEMM \
saturates at full range and misses the int8 quality gate at reduced range; serve this CPU in f32"
        .into())
}

/// `c = a · bᵀ + beta · c` (row-major; `(m, n, k)`: `a` is m × k, `b` n × k, `c` m × n) on a
/// native backend. `Backend::Candle` is not callable here (it works on tensors): use candle's `matmul`.
pub fn sgemm(backend: Backend, (m, n, k): (usize, usize, usize), a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    let _ = (m, n, k, a, b, beta, &c);
    match backend {
        #[cfg(feature = "mkl")]
        Backend::Mkl => ffi::mkl_sgemm(m, n, k, a, b, beta, c),
        #[cfg(feature = "openblas")]
        Backend::OpenBlas => ffi::openblas_sgemm(m, n, k, a, b, beta, c),
        #[cfg(feature = "dnnl")]
        Backend::Dnnl => ffi::dnnl_sgemm(m, n, k, a, b, beta, c),
        other => panic!("sgemm: {other} is not a native backend of this build"),
    }
}

/// `c = a · bᵀ` in integers (`a`: u8, m × k; `b`: i8, n × k; `c`: i32, m × n) on a native backend.
pub fn gemm_u8s8s32(backend: Backend, (m, n, k): (usize, usize, usize), a: &[u8], b: &[i8], c: &mut [i32]) {
    let _ = (m, n, k, a, b, &c);
    match backend {
        #[cfg(feature = "mkl")]
        Backend::Mkl => ffi::mkl_gemm_u8s8s32(m, n, k, a, b, c),
        #[cfg(feature = "dnnl")]
        Backend::Dnnl => ffi::dnnl_gemm_u8s8s32(m, n, k, a, b, c),
        other => panic!("gemm_u8s8s32: {other} has no integer GEMM in this build"),
    }
}

/// Sets the thread count of the native libraries that do not read it from the environment at
/// every call (OpenBLAS reads `OPENBLAS_NUM_THREADS` once; MKL and oneDNN follow OpenMP's).
pub fn set_threads(n: usize) {
    let _ = n;
    #[cfg(feature = "openblas")]
    ffi::openblas_set_threads(n);
}

/// A linear layer (`y = x · Wᵀ + b`) on the backend and precision it was built for.
pub enum Dense {
    /// candle's own matmul (any device, any dtype).
    Candle(Linear),
    /// f32 on a native backend, the bias added by the GEMM (`beta = 1` over rows of bias).
    Native(NativeF32),
    /// int8 on a native integer GEMM.
    Int8(Int8Dense),
}

/// f32 weights for a native `sgemm`.
pub struct NativeF32 {
    backend: Backend,
    /// `n × k`, row-major (Hugging Face's `out × in` layout, used transposed).
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    n: usize,
    k: usize,
}

/// int8 weights for a native integer GEMM.
pub struct Int8Dense {
    backend: Backend,
    weight: QuantizedWeight,
    bias: Option<Vec<f32>>,
}

impl Dense {
    /// Builds the layer for `options` from a loaded f32 `linear`. Anything not on the CPU, or
    /// not f32, stays on candle's matmul.
    pub fn new(linear: Linear, options: &LinearOptions) -> Result<Self> {
        let weight = linear.weight();
        if !matches!(weight.device(), Device::Cpu) || weight.dtype() != DType::F32 {
            return Ok(Self::Candle(linear));
        }
        let (n, k) = weight.dims2()?;
        let bias = linear.bias().map(|b| b.to_vec1::<f32>()).transpose()?;
        match (options.quantize, options.backend) {
            (Quantize::None, Backend::Candle) => Ok(Self::Candle(linear)),
            (Quantize::None, backend) => {
                let weight = weight.flatten_all()?.to_vec1::<f32>()?;
                Ok(Self::Native(NativeF32 { backend, weight, bias, n, k }))
            }
            (Quantize::Int8, backend) if backend.has_int8() => {
                let w = weight.flatten_all()?.to_vec1::<f32>()?;
                let weight = QuantizedWeight::new(&w, n, k);
                Ok(Self::Int8(Int8Dense { backend, weight, bias }))
            }
            (Quantize::Int8, _) => candle_core::bail!("{NO_INT8}"),
        }
    }
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Candle(linear) => linear.forward(xs),
            Self::Native(op) => xs.contiguous()?.apply_op1_no_bwd(op),
            Self::Int8(op) => xs.contiguous()?.apply_op1_no_bwd(op),
        }
    }
}

/// The input as an `m × k` f32 slice, and the output shape with `n` columns.
fn rows<'a>(storage: &'a CpuStorage, layout: &Layout, k: usize, n: usize) -> Result<(&'a [f32], usize, Shape)> {
    let (start, end) =
        layout.contiguous_offsets().ok_or_else(|| candle_core::Error::msg("dense: input is not contiguous"))?;
    let x = &storage.as_slice::<f32>()?[start..end];
    let dims = layout.dims();
    match dims.last() {
        Some(&last) if last == k => {}
        _ => candle_core::bail!("dense: input {dims:?} does not end in {k} features"),
    }
    let mut out = dims.to_vec();
    *out.last_mut().expect("non-empty") = n;
    Ok((x, x.len() / k, Shape::from(out)))
}

/// `m × n` with every row a copy of `bias` (or zeros), for a GEMM with `beta = 1`.
fn bias_rows(bias: Option<&[f32]>, m: usize, n: usize) -> (Vec<f32>, f32) {
    match bias {
        Some(b) => (b.repeat(m), 1.0),
        None => (vec![0.0; m * n], 0.0),
    }
}

impl CustomOp1 for NativeF32 {
    fn name(&self) -> &'static str {
        "dense-native-f32"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, m, shape) = rows(storage, layout, self.k, self.n)?;
        let (mut y, beta) = bias_rows(self.bias.as_deref(), m, self.n);
        sgemm(self.backend, (m, self.n, self.k), x, &self.weight, beta, &mut y);
        Ok((CpuStorage::F32(y), shape))
    }
}

impl CustomOp1 for Int8Dense {
    fn name(&self) -> &'static str {
        "dense-int8"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = &self.weight;
        let (x, m, shape) = rows(storage, layout, w.k, w.n)?;
        let q = quantize_rows(x, m, w.k);
        let mut acc = vec![0i32; m * w.n];
        gemm_u8s8s32(self.backend, (m, w.n, w.k), &q.values, &w.values, &mut acc);
        let y = w.dequantize(&acc, &q, self.bias.as_deref());
        Ok((CpuStorage::F32(y), shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!("AUTO".parse::<GemmChoice>().unwrap(), GemmChoice::Auto);
        assert_eq!("onednn".parse::<GemmChoice>().unwrap(), GemmChoice::Dnnl);
        assert!("cublas".parse::<GemmChoice>().is_err());
        assert_eq!("int8".parse::<Quantize>().unwrap(), Quantize::Int8);
        assert!("int4".parse::<Quantize>().is_err());
    }

    #[test]
    fn reads_vendor_and_isa_from_cpuinfo() {
        let amd = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512f avx512bw avx512_vnni avx512_bf16\n";
        assert_eq!(Cpu::parse(amd), Cpu { intel: false, avx512: true, vnni: true, bf16: Bf16Support::Avx512 });
        let intel = "vendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 fma\n";
        assert_eq!(Cpu::parse(intel), Cpu { intel: true, avx512: false, vnni: false, bf16: Bf16Support::None });
        let amx = "vendor_id\t: GenuineIntel\nflags\t\t: avx512f avx512bw amx_bf16 amx_tile\n";
        assert_eq!(Cpu::parse(amx).bf16, Bf16Support::Amx);
        assert_eq!(Cpu::parse(""), Cpu::default());
    }

    #[test]
    fn auto_falls_back_to_candle_and_explicit_choices_must_be_built_in() {
        let cpu = Cpu::default();
        let auto = GemmChoice::Auto.resolve(Quantize::None, &cpu).unwrap();
        assert!(Backend::compiled().contains(&auto));
        assert!(GemmChoice::Candle.resolve(Quantize::Int8, &cpu).is_err());
        let int8 = GemmChoice::Auto.resolve(Quantize::Int8, &cpu);
        assert_eq!(int8.is_ok(), Backend::compiled().iter().any(|b| b.has_int8()), "{int8:?}");
        if !cfg!(feature = "openblas") {
            let err = GemmChoice::OpenBlas.resolve(Quantize::None, &cpu).unwrap_err();
            assert!(err.contains("--features openblas"), "{err}");
        }
    }

    #[test]
    fn int8_is_refused_without_vnni() {
        let avx2 = Cpu::parse("vendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 fma\n");
        let err = int8_runs_on(&avx2).unwrap_err();
        assert!(err.contains("AVX-512 VNNI or AVX-VNNI"), "{err}");
        let vnni = Cpu::parse("vendor_id\t: GenuineIntel\nflags\t\t: avx2 avx_vnni\n");
        assert_eq!(int8_runs_on(&vnni), Ok(()));
    }

    /// Every linear-layer variant this build has against candle's own matmul on the same weights.
    #[test]
    fn every_backend_matches_candle_matmul() -> Result<()> {
        let dev = Device::Cpu;
        // Deterministic values in [-1, 1]; odd sizes.
        let (m, k, n) = (37usize, 95usize, 81usize);
        let gen = |len: usize, seed: u32| -> Vec<f32> {
            (0..len).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0).collect()
        };
        let x = Tensor::from_vec(gen(m * k, 7), (1, m, k), &dev)?;
        let w = Tensor::from_vec(gen(n * k, 11), (n, k), &dev)?;
        let b = Tensor::from_vec(gen(n, 13), n, &dev)?;
        let linear = Linear::new(w, Some(b));
        let want = linear.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        // Without VNNI int8 is refused at load (and its GEMM saturates at full range).
        let vnni = int8_runs_on(&Cpu::detect()).is_ok();
        if !vnni {
            println!("int8 not compared: this CPU has no VNNI");
        }
        for backend in Backend::compiled() {
            for quantize in [Quantize::None, Quantize::Int8] {
                if quantize == Quantize::Int8 && !(backend.has_int8() && vnni) {
                    continue;
                }
                let options = LinearOptions { backend, quantize };
                let got = Dense::new(linear.clone(), &options)?.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
                let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                // f32: summation order only. int8: ~1% of the output range.
                let bound = if quantize == Quantize::None { 1e-4 * scale } else { 2e-2 * scale };
                assert!(worst <= bound, "{backend} {quantize}: max error {worst} > {bound}");
            }
        }
        Ok(())
    }
}
