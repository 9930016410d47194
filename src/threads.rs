//! Threads for the model's math on CPU, set once at start-up before any library reads them.
//!
//! The packed encoder (BERT, DistilBERT on the CPU) does all of its math on one pool: each
//! instance's own rayon pool of [`pool_threads`] threads runs its kernels and splits its GEMMs,
//! calling MKL single-threaded from each thread, so no second pool spins against it.
//!
//! The padded encoders on candle (the other architectures) run three kinds of workers: candle's
//! pools for element-wise ops and, in the `mkl` build, MKL's OpenMP team for matmuls, whose
//! threads spin for 200 ms after each call by default. Measured on 2 vCPUs (docs/benchmarks.md):
//! MKL's threads spin for 1 ms after a call here. With 0 ms every one of the hundreds of small
//! per-head attention GEMMs in a batch wakes a sleeping thread (5-6x slower on short inputs);
//! with the default 200 ms they keep spinning through tokenization and HTTP work.
//!
//! These libraries only read environment variables, so this module sets them, and only where the
//! operator has not: an explicit `OMP_NUM_THREADS`, `RAYON_NUM_THREADS` or `KMP_BLOCKTIME` wins.
//!
//! With `--instances N` every count here is per instance: each instance thread runs its forward
//! pass inside its own rayon pool of [`pool_threads`] threads (src/worker), so candle's matmul and
//! element-wise ops of two instances never queue behind each other on one pool; MKL's OpenMP
//! runtime gives every calling thread a team of its own, `OMP_NUM_THREADS` wide.

/// Math threads per model instance: `model_threads` when set, else `cpus` (0: the cores the OS
/// gives the process) split evenly between the instances (at least one each).
pub fn per_instance(model_threads: usize, instances: usize, cpus: usize) -> usize {
    if model_threads > 0 {
        return model_threads;
    }
    let cores = if cpus > 0 { cpus } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
    (cores / instances.max(1)).max(1)
}

/// Threads of each instance's own rayon pool for `per_instance` math threads: all of them (the
/// packed encoder's kernels and GEMM blocks run there).
pub fn pool_threads(per_instance: usize) -> usize {
    per_instance.max(1)
}

/// Sets the thread environment for `per_instance` math threads per model instance (0: one per
/// core). Call it before any thread is started (first thing in `main`, before the async runtime).
pub fn configure(per_instance: usize) {
    for (name, value) in environment(per_instance) {
        if std::env::var_os(name).is_none() {
            std::env::set_var(name, value.to_string());
        }
    }
}

/// The variables [`configure`] sets for `per_instance` math threads per instance (0: one per
/// core), for a process that starts the server with them (the load benchmark).
pub fn environment(per_instance: usize) -> Vec<(&'static str, usize)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = if per_instance == 0 { cores } else { per_instance };
    if cfg!(feature = "mkl") {
        // Matmuls (most of the FLOPs) on MKL's team; candle's element-wise pools stay serial so
        // they do not spin against it.
        vec![("OMP_NUM_THREADS", n), ("RAYON_NUM_THREADS", 1), ("KMP_BLOCKTIME", 1)]
    } else {
        // candle's own matmul (the gemm crate) and element-wise ops share its rayon-sized pools.
        vec![("RAYON_NUM_THREADS", n)]
    }
}
