//! Exact (erf) GELU for f32 on CPU as a candle op, for the padded encoder and the heads: the
//! packed encoder's vectorized GELU (src/model/kernels/activation.rs) over chunks run in
//! parallel. Other dtypes and devices keep candle's kernel.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use multiversion::multiversion;
use multiversion::target::target_cfg_f;
use rayon::prelude::*;

use crate::model::kernels::activation::gelu;

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

#[multiversion(targets = "simd")]
fn apply(src: &[f32], dst: &mut [f32]) {
    let fma = target_cfg_f!(target_feature = "fma");
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = gelu(x, fma);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
