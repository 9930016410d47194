//! A linear layer's bias added to its GEMM output where no other kernel follows to fuse it into
//! (the QKV projection, before attention): in place, or on the way to the bf16 copy.

use rayon::prelude::*;

use super::{bf16, rows_per_task};

/// `x += bias` over rows of `bias.len()`, on the current rayon pool.
pub fn add(x: &mut [f32], bias: &[f32]) {
    let width = bias.len();
    assert!(width > 0 && x.len() % width == 0, "bias: {} values in rows of {width}", x.len());
    x.par_chunks_mut(width)
        .with_min_len(rows_per_task(width))
        .for_each(|row| row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b));
}

/// `out = bf16(x + bias)` over rows of `bias.len()`, on the current rayon pool.
pub fn add_into_bf16(x: &[f32], bias: &[f32], out: &mut [u16]) {
    let width = bias.len();
    assert!(width > 0 && x.len() % width == 0 && out.len() == x.len(), "bias: {} values in rows of {width}", x.len());
    out.par_chunks_mut(width).zip(x.par_chunks(width)).with_min_len(rows_per_task(width)).for_each(|(o, row)| {
        for ((o, &v), &b) in o.iter_mut().zip(row).zip(bias) {
            *o = bf16::from_f32(v + b);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::testing::random;
    use candle_core::{Device, Tensor};

    #[test]
    fn matches_candle_broadcast_add() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (rows, width) = (70, 1152);
        let (x, bias) = (random(rows * width, 1, 4.0), random(width, 2, 1.0));
        let t = Tensor::from_slice(&x, (rows, width), &Device::Cpu).unwrap();
        let want: Vec<f32> = t
            .broadcast_add(&Tensor::from_slice(&bias, width, &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut ours = x.clone();
        pool.install(|| add(&mut ours, &bias));
        assert_eq!(ours, want);
        let mut out = vec![0u16; x.len()];
        pool.install(|| add_into_bf16(&x, &bias, &mut out));
        assert!(out.iter().zip(&want).all(|(&o, &w)| o == bf16::from_f32(w)));
    }
}
