//! Self-attention of a packed batch, one task per (sequence, head): `softmax(q·kᵀ)·v` with q, k
//! and v read in place from the `tokens × 3·hidden` QKV matrix (the 1/√d scale is already folded
//! into q's weights) and the context written straight into its columns of `tokens × hidden`.
//! No mask and no padding: each sequence attends to its own tokens only. The products run on the
//! GEMM library on the task's own thread; the tasks spread over the current rayon pool.

use std::ops::Range;

use rayon::prelude::*;

use super::softmax::softmax_row;
use crate::model::gemm::cpu::CpuGemm;
use crate::model::gemm::view::{MatMut, MatRef};

/// The attention heads of a layer.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub count: usize,
    pub dim: usize,
}

/// The QKV matrix, `tokens × 3·hidden` (q, then k, then v, each `hidden` wide, head after head),
/// in the precision the products take.
#[derive(Debug, Clone, Copy)]
pub enum Qkv<'a> {
    F32(&'a [f32]),
    Bf16(&'a [u16]),
}

/// Per-thread scratch: one `len × len` score matrix and its bf16 copy.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    probs: Vec<u16>,
}

/// Writes the attention context of every sequence (`seqs`: token ranges of the packed batch) into
/// `ctx` (`tokens × hidden`).
pub fn attention(gemm: CpuGemm, qkv: Qkv<'_>, seqs: &[Range<usize>], heads: Heads, ctx: &mut [f32]) {
    let hidden = heads.count * heads.dim;
    let tokens = seqs.last().map_or(0, |r| r.end);
    assert_eq!(ctx.len(), tokens * hidden, "attention: context holds {} values", ctx.len());
    let mut tasks = Vec::with_capacity(seqs.len() * heads.count);
    let mut rest = MatMut::dense(ctx, tokens, hidden);
    for range in seqs {
        let (mut rows, tail) = rest.split_rows(range.len());
        rest = tail;
        for head in 0..heads.count {
            let (block, others) = rows.split_cols(heads.dim);
            rows = others;
            tasks.push((range.clone(), head, block));
        }
    }
    tasks.into_par_iter().for_each_init(Scratch::default, |scratch, (range, head, out)| match qkv {
        Qkv::F32(m) => one_f32(gemm, m, &range, head, heads, out, scratch),
        Qkv::Bf16(m) => one_bf16(gemm, m, &range, head, heads, out, scratch),
    });
}

/// q, k and v of one (sequence, head): `len × dim` views at the QKV matrix's row stride.
fn views<'a, T>(qkv: &'a [T], range: &Range<usize>, head: usize, heads: Heads) -> [MatRef<'a, T>; 3] {
    let hidden = heads.count * heads.dim;
    let width = 3 * hidden;
    [0, 1, 2].map(|part| {
        let at = range.start * width + part * hidden + head * heads.dim;
        MatRef::new(&qkv[at..], range.len(), heads.dim, width)
    })
}

fn one_f32(
    gemm: CpuGemm,
    qkv: &[f32],
    range: &Range<usize>,
    head: usize,
    heads: Heads,
    out: MatMut<'_, f32>,
    scratch: &mut Scratch,
) {
    let [q, k, v] = views(qkv, range, head, heads);
    let len = range.len();
    scratch.scores.resize(len * len, 0.0);
    gemm.f32(q, k, true, MatMut::dense(&mut scratch.scores, len, len), 0.0);
    scratch.scores.chunks_exact_mut(len).for_each(|row| softmax_row(row, None));
    gemm.f32(MatRef::dense(&scratch.scores, len, len), v, false, out, 0.0);
}

fn one_bf16(
    gemm: CpuGemm,
    qkv: &[u16],
    range: &Range<usize>,
    head: usize,
    heads: Heads,
    out: MatMut<'_, f32>,
    scratch: &mut Scratch,
) {
    let [q, k, v] = views(qkv, range, head, heads);
    let len = range.len();
    scratch.scores.resize(len * len, 0.0);
    scratch.probs.resize(len * len, 0);
    gemm.bf16(q, k, true, MatMut::dense(&mut scratch.scores, len, len), 0.0);
    for (row, probs) in scratch.scores.chunks_exact_mut(len).zip(scratch.probs.chunks_exact_mut(len)) {
        softmax_row(row, Some(probs));
    }
    gemm.bf16(MatRef::dense(&scratch.probs, len, len), v, false, out, 0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gemm::Backend;
    use crate::model::kernels::bf16;
    use crate::model::kernels::testing::{max_diff, random};
    use candle_core::{Device, Tensor, D};

    /// candle's attention of one sequence: `len × 3·hidden` → `len × hidden`.
    fn reference(qkv: &[f32], len: usize, heads: Heads) -> Vec<f32> {
        let hidden = heads.count * heads.dim;
        let t = Tensor::from_slice(qkv, (len, 3, heads.count, heads.dim), &Device::Cpu).unwrap();
        let part =
            |i: usize| t.narrow(1, i, 1).unwrap().squeeze(1).unwrap().transpose(0, 1).unwrap().contiguous().unwrap();
        let (q, k, v) = (part(0), part(1), part(2));
        let scores = q.matmul(&k.t().unwrap()).unwrap();
        let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        let ctx = probs.matmul(&v).unwrap().transpose(0, 1).unwrap().reshape((len, hidden)).unwrap();
        ctx.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn matches_candle_per_sequence_in_f32_and_bf16() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let heads = Heads { count: 4, dim: 16 };
        let hidden = heads.count * heads.dim;
        let lens = [7usize, 1, 23, 12];
        let mut seqs = Vec::new();
        for len in lens {
            let start = seqs.last().map_or(0, |r: &Range<usize>| r.end);
            seqs.push(start..start + len);
        }
        let tokens = seqs.last().unwrap().end;
        let qkv = random(tokens * 3 * hidden, 9, 2.0);
        let want: Vec<f32> = seqs
            .iter()
            .flat_map(|r| reference(&qkv[r.start * 3 * hidden..r.end * 3 * hidden], r.len(), heads))
            .collect();
        for gemm in Backend::compiled().into_iter().filter_map(CpuGemm::for_backend) {
            let mut ctx = vec![f32::NAN; tokens * hidden];
            pool.install(|| attention(gemm, Qkv::F32(&qkv), &seqs, heads, &mut ctx));
            assert!(max_diff(&want, &ctx) < 1e-5, "{gemm:?} f32: {}", max_diff(&want, &ctx));
            if gemm.has_bf16() {
                let qkv_b = bf16::to_vec(&qkv);
                let mut ctx = vec![f32::NAN; tokens * hidden];
                pool.install(|| attention(gemm, Qkv::Bf16(&qkv_b), &seqs, heads, &mut ctx));
                // bf16 inputs and probabilities: about 2^-8 relative, on values of order 1.
                assert!(max_diff(&want, &ctx) < 3e-2, "{gemm:?} bf16: {}", max_diff(&want, &ctx));
            }
        }
    }
}
