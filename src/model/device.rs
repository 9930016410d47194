//! Device and dtype selection, parsed from configuration strings (`cpu`, `cuda:0`; `f32`, `f16`, `bf16`).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use super::gemm::cpu::CpuGemm;
use super::gemm::Bf16Support;
use super::LoadError;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal; needs the `cuda` cargo feature.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}: expected cpu or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device; a CUDA device in a build without the `cuda` feature is an error, not a panic.
    pub fn open(self) -> Result<Device, LoadError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(LoadError::Device {
                        device: self.to_string(),
                        reason: "this build has no CUDA support (rebuild with --features cuda)".into(),
                    });
                }
                Device::new_cuda(ordinal)
                    .map_err(|e| LoadError::Device { device: self.to_string(), reason: e.to_string() })
            }
        }
    }
}

/// The devices `--device` lists: one, or several GPUs (`cuda:0,cuda:1`), each holding its own copy
/// of the weights and running its own instances (Triton's instance group per GPU). The CPU is one
/// device: more CPU instances are `--instances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList(Vec<DeviceSpec>);

impl DeviceList {
    /// The first device: where the model is loaded first, and what device-dependent defaults
    /// (batch budget, batching deadline) follow.
    pub fn first(&self) -> DeviceSpec {
        self.0[0]
    }

    pub fn iter(&self) -> impl Iterator<Item = DeviceSpec> + '_ {
        self.0.iter().copied()
    }
}

impl Default for DeviceList {
    fn default() -> Self {
        Self(vec![DeviceSpec::Cpu])
    }
}

impl From<DeviceSpec> for DeviceList {
    fn from(device: DeviceSpec) -> Self {
        Self(vec![device])
    }
}

impl FromStr for DeviceList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let devices = s.split(',').map(str::parse).collect::<Result<Vec<DeviceSpec>, _>>()?;
        if devices.len() > 1 {
            if devices.contains(&DeviceSpec::Cpu) {
                return Err(format!(
                    "device list {s:?}: only GPUs can be listed together (more CPU instances: --instances N)"
                ));
            }
            if let Some(twice) = devices.iter().enumerate().find(|(i, d)| devices[..*i].contains(d)) {
                return Err(format!(
                    "device list {s:?} names {} twice (more instances per device: --instances N)",
                    twice.1
                ));
            }
        }
        Ok(Self(devices))
    }
}

impl fmt::Display for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(","))
    }
}

/// Floating-point type of weights and activations, as `--dtype` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeSpec {
    /// The fastest this CPU and build run at full quality: bf16 where the packed encoder runs the
    /// model on a bf16 GEMM faster than its f32 one on this CPU (oneDNN's on AVX512-BF16 or AMX,
    /// MKL's on AMX only: on AVX512-BF16 it served slower than f32, docs/benchmarks.md, round 5),
    /// f32 elsewhere and on GPUs.
    #[default]
    Auto,
    F32,
    F16,
    BF16,
}

impl FromStr for DTypeSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(Self::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            "auto" => Ok(Self::Auto),
            _ => Err(format!("unknown dtype {s:?}: expected auto, f32, f16 or bf16")),
        }
    }
}

impl fmt::Display for DTypeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::BF16 => "bf16",
        })
    }
}

impl DTypeSpec {
    /// The dtype to load with on `device`: `Auto` resolved for this CPU's bf16 arithmetic and the
    /// GEMM the packed encoder runs the model on (`gemm`; `None`: the model is not on it); a dtype
    /// the CPU has no arithmetic for is refused, saying why.
    pub fn resolve(self, device: DeviceSpec, cpu: Bf16Support, gemm: Option<CpuGemm>) -> Result<DType, String> {
        if device != DeviceSpec::Cpu {
            return Ok(match self {
                Self::Auto | Self::F32 => DType::F32,
                Self::F16 => DType::F16,
                Self::BF16 => DType::BF16,
            });
        }
        match self {
            Self::Auto if gemm.is_some_and(|g| g.fast_bf16(cpu)) => Ok(DType::BF16),
            Self::Auto | Self::F32 => Ok(DType::F32),
            Self::BF16 if cpu == Bf16Support::None => {
                Err("--dtype bf16: this CPU has neither AMX-BF16 nor AVX512-BF16, where bf16 \
                runs slower than f32; use --dtype f32 (or auto)"
                    .into())
            }
            Self::BF16 if gemm.is_none() => Err("--dtype bf16 on the CPU runs in the packed encoder only \
                (BERT, DistilBERT, ELECTRA), and this model is not on it; use --dtype f32 (or auto)"
                .into()),
            Self::BF16 if !gemm.is_some_and(CpuGemm::has_bf16) => {
                Err("--dtype bf16 on the CPU runs on oneDNN's or MKL's bf16 GEMM: rebuild with \
                --features dnnl or mkl (scripts/serve.sh does), or use --dtype f32"
                    .into())
            }
            Self::BF16 => Ok(DType::BF16),
            Self::F16 => Err("--dtype f16 has no fast CPU path (candle's f16 matmul on the CPU is slower than f32); \
                use --dtype bf16 on a CPU with AMX-BF16 or AVX512-BF16, or f32"
                .into()),
        }
    }

    /// The spec naming a resolved dtype (what `/info` and the metrics report).
    pub fn of(dtype: DType) -> Self {
        match dtype {
            DType::BF16 => Self::BF16,
            DType::F16 => Self::F16,
            _ => Self::F32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_dtypes() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert_eq!("bf16".parse::<DTypeSpec>().unwrap(), DTypeSpec::BF16);
        assert_eq!("AUTO".parse::<DTypeSpec>().unwrap(), DTypeSpec::Auto);
        assert!("int8".parse::<DTypeSpec>().is_err());
    }

    #[test]
    fn parses_device_lists_of_gpus_only_each_once() {
        let list = |s: &str| s.parse::<DeviceList>();
        assert_eq!(list("cpu").unwrap(), DeviceList::default());
        let two = list("cuda:0, cuda:1").unwrap();
        assert_eq!(two.iter().collect::<Vec<_>>(), vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]);
        assert_eq!((two.first(), two.to_string()), (DeviceSpec::Cuda(0), "cuda:0,cuda:1".to_string()));
        let err = list("cpu,cuda:0").unwrap_err();
        assert!(err.contains("--instances"), "{err}");
        let err = list("cuda:1,cuda:0,cuda:1").unwrap_err();
        assert!(err.contains("cuda:1 twice"), "{err}");
        assert!(list("cpu,cpu").is_err() && list("").is_err() && list("cuda:0,").is_err());
    }

    #[test]
    fn auto_picks_bf16_only_where_cpu_and_gemm_have_it_and_slow_choices_are_refused() {
        let cpu = DeviceSpec::Cpu;
        let (amx, avx512, none) = (Bf16Support::Amx, Bf16Support::Avx512, Bf16Support::None);
        // What each library's bf16 GEMM serves (docs/benchmarks.md), where the build has it.
        let (dnnl, mkl, crate_) = (Some(CpuGemm::Dnnl), Some(CpuGemm::Mkl), Some(CpuGemm::Crate));
        let bf16_if = |built: bool| if built { Ok(DType::BF16) } else { Ok(DType::F32) };
        // oneDNN's bf16 is probed on the host (none without AVX-512), so a CPU with bf16 arithmetic
        // is simulated only where the host could be one.
        assert_eq!(DTypeSpec::Auto.resolve(cpu, amx, dnnl), bf16_if(CpuGemm::Dnnl.has_bf16()));
        assert_eq!(DTypeSpec::Auto.resolve(cpu, avx512, dnnl), bf16_if(CpuGemm::Dnnl.has_bf16()));
        assert_eq!(DTypeSpec::Auto.resolve(cpu, amx, mkl), bf16_if(cfg!(feature = "mkl")));
        for (support, gemm) in [(avx512, mkl), (amx, crate_), (amx, None), (none, dnnl), (none, mkl)] {
            assert_eq!(DTypeSpec::Auto.resolve(cpu, support, gemm), Ok(DType::F32), "{support:?} {gemm:?}");
        }
        assert_eq!(DTypeSpec::F32.resolve(cpu, amx, dnnl), Ok(DType::F32));
        // Asked for, bf16 runs wherever the CPU has bf16 arithmetic and the GEMM a bf16 call.
        assert_eq!(DTypeSpec::BF16.resolve(cpu, avx512, mkl).is_ok(), cfg!(feature = "mkl"));
        let err = DTypeSpec::BF16.resolve(cpu, none, dnnl).unwrap_err();
        assert!(err.contains("AVX512-BF16"), "{err}");
        let err = DTypeSpec::BF16.resolve(cpu, amx, crate_).unwrap_err();
        assert!(err.contains("--features dnnl or mkl"), "{err}");
        let err = DTypeSpec::BF16.resolve(cpu, amx, None).unwrap_err();
        assert!(err.contains("packed encoder only"), "{err}");
        assert!(DTypeSpec::F16.resolve(cpu, amx, dnnl).unwrap_err().contains("no fast CPU path"));
        // GPUs: as asked, auto is f32.
        assert_eq!(DTypeSpec::Auto.resolve(DeviceSpec::Cuda(0), amx, dnnl), Ok(DType::F32));
        assert_eq!(DTypeSpec::F16.resolve(DeviceSpec::Cuda(0), none, None), Ok(DType::F16));
        assert_eq!(DTypeSpec::of(DType::BF16), DTypeSpec::BF16);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
