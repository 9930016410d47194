//! The attention step alone (src/model/kernels/attention.rs: two GEMM-library calls per
//! (sequence, head) with a softmax between), side by side in one run on every library this build
//! has, in f32 and (where the library has it) bf16 inputs, for a batch of equal-length sequences
//! packed end to end, on the server's math pool.
//!
//! `cargo bench --features mkl,dnnl --bench attention` (with `scripts/mkl.sh` and
//! `scripts/onednn.sh` evaluated). Environment: `BENCH_SECONDS` per cell (default 1),
//! `BENCH_BATCH` (default 32), `BENCH_TOKENS` (default "16,106,256"), `BENCH_HEADS` and
//! `BENCH_HEAD_DIM` (default 12 × 32, all-MiniLM-L6-v2's; 12 × 64 is all-mpnet-base-v2's).

#[path = "support/timing.rs"]
mod timing;

use std::ops::Range;

use pipeserve::model::gemm::cpu::CpuGemm;
use pipeserve::model::gemm::Backend;
use pipeserve::model::kernels::attention::{attention, Heads, Qkv};
use pipeserve::model::kernels::bf16;
use timing::{env, list, per_call};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    pipeserve::threads::configure(0);
    let threads = pipeserve::threads::pool_threads(pipeserve::threads::per_instance(0, 1, 0));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("math pool");
    let seconds: f64 = env("BENCH_SECONDS", 1.0);
    let batch: usize = env("BENCH_BATCH", 32);
    let heads = Heads { count: env("BENCH_HEADS", 12), dim: env("BENCH_HEAD_DIM", 32) };
    let hidden = heads.count * heads.dim;
    let lens = list("BENCH_TOKENS", "16,106,256");
    let gemms: Vec<CpuGemm> = Backend::compiled().into_iter().filter_map(CpuGemm::for_backend).collect();
    println!(
        "attention of {batch} sequences, {} heads × {}, {threads} math threads, {seconds} s per cell\n",
        heads.count, heads.dim
    );
    println!("| tokens | library | inputs | ms/call | GFLOP/s |");
    println!("|---:|---|---|---:|---:|");
    for len in lens {
        let seqs: Vec<Range<usize>> = (0..batch).map(|i| i * len..(i + 1) * len).collect();
        let tokens = batch * len;
        let qkv: Vec<f32> = (0..tokens * 3 * hidden).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5).collect();
        let qkv_b = bf16::to_vec(&qkv);
        let mut ctx = vec![0f32; tokens * hidden];
        let flops = 4.0 * (batch * len * len * hidden) as f64;
        let mut cell = |inputs: &str, gemm: CpuGemm, qkv: Qkv<'_>| {
            let s = per_call(seconds, || pool.install(|| attention(gemm, qkv, &seqs, heads, &mut ctx)));
            println!("| {len} | {gemm:?} | {inputs} | {:.2} | {:.1} |", s * 1e3, flops / s / 1e9);
        };
        for &gemm in &gemms {
            cell("f32", gemm, Qkv::F32(&qkv));
            if gemm.has_bf16() {
                cell("bf16", gemm, Qkv::Bf16(&qkv_b));
            }
        }
    }
}
