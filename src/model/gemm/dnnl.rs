//! oneDNN's matmul primitive (feature `dnnl`): bf16 GEMMs with f32 accumulation and output on
//! the calling thread, the packed encoder's bf16 path on CPUs with AVX512-BF16 or AMX.
//!
//! oneDNN dispatches on the ISA alone (its `brg:avx512_core_bf16` and `brg:avx512_core_amx`
//! kernels), where MKL's bf16 GEMM took a slow path on an AMD Zen 4 (docs/benchmarks.md, round 5).
//! A primitive is compiled for one shape, so:
//! - a linear layer's weight is reordered once, at load, into the blocked layout the kernel reads
//!   ([`PackedBf16`]), and its rows run in chunks of at most [`CHUNK`], so a layer needs at most
//!   `CHUNK` primitives whatever the batch's token count;
//! - other products (attention's, on strided views) get a primitive per shape and strides.
//!
//! Primitives live in one process-wide cache. They are created and run with OpenMP limited to the
//! calling thread (the encoder splits work over its own rayon pool), with a per-thread stream and
//! a per-thread scratchpad passed in (`scratchpad_mode_user`), so concurrent calls share nothing
//! mutable.
//!
//! All `unsafe` of the primitive API is in this module. Each wrapper checks the views' bounds
//! before handing their pointers to oneDNN, which reads and writes only within the memory
//! descriptors built from those same bounds and keeps no pointer after `dnnl_primitive_execute`
//! returns (CPU streams run in order and synchronously).
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::{Arc, Mutex, OnceLock};

use super::view::{MatMut, MatRef};

/// Rows per primitive call of a packed linear layer: larger inputs run chunk after chunk (brgemm's
/// rate is flat from about 16 rows up; docs/benchmarks.md).
pub const CHUNK: usize = 128;

/// Primitives kept before the cache is emptied: a bound on memory with shapes no model repeats.
const CACHE_LIMIT: usize = 4096;

mod sys {
    use std::ffi::{c_int, c_void};

    #[repr(C)]
    pub struct Opaque {
        _private: [u8; 0],
    }
    pub type Engine = *mut Opaque;
    pub type Stream = *mut Opaque;
    pub type MemoryDesc = *mut Opaque;
    pub type Memory = *mut Opaque;
    pub type PrimitiveDesc = *mut Opaque;
    pub type Primitive = *mut Opaque;
    pub type Attr = *mut Opaque;
    pub type PostOps = *mut Opaque;
    pub type Status = c_int;

    #[repr(C)]
    pub struct ExecArg {
        pub arg: c_int,
        pub memory: Memory,
    }

    // Values from oneDNN 3.2's dnnl_types.h / dnnl_common_types.h.
    pub const ENGINE_CPU: c_int = 1;
    pub const STREAM_DEFAULT: u32 = 1;
    pub const BF16: c_int = 2;
    pub const F32: c_int = 3;
    pub const TAG_ANY: c_int = 1;
    pub const SCRATCHPAD_USER: c_int = 1;
    pub const ARG_SRC: c_int = 1;
    pub const ARG_DST: c_int = 17;
    pub const ARG_WEIGHTS: c_int = 33;
    pub const ARG_SCRATCHPAD: c_int = 80;
    pub const QUERY_IMPL_INFO: c_int = 8;
    pub const QUERY_WEIGHTS_MD: c_int = 131;
    pub const QUERY_SCRATCHPAD_MD: c_int = 136;

    #[link(name = "dnnl")]
    extern "C" {
        pub fn dnnl_engine_create(engine: *mut Engine, kind: c_int, index: usize) -> Status;
        pub fn dnnl_stream_create(stream: *mut Stream, engine: Engine, flags: u32) -> Status;
        pub fn dnnl_memory_desc_create_with_strides(
            md: *mut MemoryDesc,
            ndims: c_int,
            dims: *const i64,
            data_type: c_int,
            strides: *const i64,
        ) -> Status;
        pub fn dnnl_memory_desc_create_with_tag(
            md: *mut MemoryDesc,
            ndims: c_int,
            dims: *const i64,
            data_type: c_int,
            tag: c_int,
        ) -> Status;
        pub fn dnnl_memory_desc_clone(md: *mut MemoryDesc, existing: MemoryDesc) -> Status;
        pub fn dnnl_memory_desc_destroy(md: MemoryDesc) -> Status;
        pub fn dnnl_memory_desc_get_size(md: MemoryDesc) -> usize;
        pub fn dnnl_primitive_attr_create(attr: *mut Attr) -> Status;
        pub fn dnnl_primitive_attr_destroy(attr: Attr) -> Status;
        pub fn dnnl_primitive_attr_set_scratchpad_mode(attr: Attr, mode: c_int) -> Status;
        pub fn dnnl_primitive_attr_set_post_ops(attr: Attr, post_ops: PostOps) -> Status;
        pub fn dnnl_post_ops_create(post_ops: *mut PostOps) -> Status;
        pub fn dnnl_post_ops_destroy(post_ops: PostOps) -> Status;
        pub fn dnnl_post_ops_append_sum(post_ops: PostOps, scale: f32, zero_point: i32, data_type: c_int) -> Status;
        pub fn dnnl_matmul_primitive_desc_create(
            pd: *mut PrimitiveDesc,
            engine: Engine,
            src: MemoryDesc,
            weights: MemoryDesc,
            bias: MemoryDesc,
            dst: MemoryDesc,
            attr: Attr,
        ) -> Status;
        pub fn dnnl_reorder_primitive_desc_create(
            pd: *mut PrimitiveDesc,
            src: MemoryDesc,
            src_engine: Engine,
            dst: MemoryDesc,
            dst_engine: Engine,
            attr: Attr,
        ) -> Status;
        pub fn dnnl_primitive_desc_query_md(pd: PrimitiveDesc, what: c_int, index: c_int) -> MemoryDesc;
        pub fn dnnl_primitive_desc_query(pd: PrimitiveDesc, what: c_int, index: c_int, result: *mut c_void) -> Status;
        pub fn dnnl_primitive_desc_destroy(pd: PrimitiveDesc) -> Status;
        pub fn dnnl_primitive_create(primitive: *mut Primitive, pd: PrimitiveDesc) -> Status;
        pub fn dnnl_primitive_destroy(primitive: Primitive) -> Status;
        pub fn dnnl_primitive_execute(
            primitive: Primitive,
            stream: Stream,
            nargs: c_int,
            args: *const ExecArg,
        ) -> Status;
        pub fn dnnl_memory_create(memory: *mut Memory, md: MemoryDesc, engine: Engine, handle: *mut c_void) -> Status;
        pub fn dnnl_memory_destroy(memory: Memory) -> Status;
        pub fn dnnl_memory_set_data_handle(memory: Memory, handle: *mut c_void) -> Status;
        pub fn dnnl_stream_wait(stream: Stream) -> Status;
        pub fn dnnl_stream_destroy(stream: Stream) -> Status;
    }

    // The OpenMP runtime oneDNN runs on: GNU's (libdnnl's own dependency), or in an `mkl` build
    // Intel's, linked statically with MKL, which implements the same entry points.
    #[cfg_attr(not(feature = "mkl"), link(name = "gomp"))]
    extern "C" {
        pub fn omp_set_num_threads(n: c_int);
        pub fn omp_get_max_threads() -> c_int;
    }
}

/// Panics with the call's name unless oneDNN reported success; its errors here are invalid
/// arguments or out of memory, neither of which a caller can handle.
fn ok(status: sys::Status, what: &str) {
    assert_eq!(status, 0, "oneDNN {what} failed with status {status}");
}

/// Runs `f` with OpenMP (and so oneDNN) limited to the calling thread, restoring its setting.
pub(super) fn serial<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY (all three): thread-local OpenMP getters and setters without pointers.
    let before = unsafe { sys::omp_get_max_threads() };
    unsafe { sys::omp_set_num_threads(1) };
    let result = f();
    unsafe { sys::omp_set_num_threads(before) };
    result
}

struct Engine(sys::Engine);
// SAFETY: a CPU engine is immutable after creation and oneDNN allows its use from any thread.
unsafe impl Send for Engine {}
unsafe impl Sync for Engine {}

fn engine() -> sys::Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut e = ptr::null_mut();
            // SAFETY: writes the new engine's handle into `e`.
            ok(unsafe { sys::dnnl_engine_create(&mut e, sys::ENGINE_CPU, 0) }, "engine_create");
            Engine(e)
        })
        .0
}

/// This thread's stream, scratchpad and memory objects per matmul (bound to new pointers at each
/// call, which costs far less than creating them: attention runs thousands of small products per
/// batch). Never destroyed: threads of the encoder's pool live as long as it.
struct ThreadState {
    stream: sys::Stream,
    scratch: Vec<u8>,
    /// src, weights, dst and scratchpad memory objects of each matmul this thread ran.
    memories: HashMap<Key, [sys::Memory; 4]>,
}

thread_local! {
    static STATE: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
}

/// An owned memory descriptor.
struct Md(sys::MemoryDesc);

impl Md {
    fn strided(dims: [i64; 2], data_type: c_int, strides: [i64; 2]) -> Self {
        let mut md = ptr::null_mut();
        // SAFETY: `dims` and `strides` hold the 2 values `ndims` says.
        let s = unsafe {
            sys::dnnl_memory_desc_create_with_strides(&mut md, 2, dims.as_ptr(), data_type, strides.as_ptr())
        };
        ok(s, "memory_desc_create_with_strides");
        Self(md)
    }

    fn any(dims: [i64; 2], data_type: c_int) -> Self {
        let mut md = ptr::null_mut();
        // SAFETY: as above.
        ok(
            unsafe { sys::dnnl_memory_desc_create_with_tag(&mut md, 2, dims.as_ptr(), data_type, sys::TAG_ANY) },
            "md any",
        );
        Self(md)
    }

    /// A copy of a descriptor a primitive descriptor owns.
    fn clone_of(md: sys::MemoryDesc) -> Self {
        let mut copy = ptr::null_mut();
        // SAFETY: `md` is a live descriptor returned by a query.
        ok(unsafe { sys::dnnl_memory_desc_clone(&mut copy, md) }, "memory_desc_clone");
        Self(copy)
    }

    fn size(&self) -> usize {
        // SAFETY: a live descriptor.
        unsafe { sys::dnnl_memory_desc_get_size(self.0) }
    }
}

impl Drop for Md {
    fn drop(&mut self) {
        // SAFETY: owned, destroyed once.
        unsafe { sys::dnnl_memory_desc_destroy(self.0) };
    }
}

/// One compiled matmul and the descriptors its arguments are bound with.
struct Matmul {
    primitive: sys::Primitive,
    src: Md,
    weights: Md,
    dst: Md,
    scratch: Md,
    scratch_size: usize,
    implementation: String,
}

// SAFETY: an executed primitive is not mutated (its scratchpad is passed in per call), and oneDNN
// allows one primitive to run on several threads at once.
unsafe impl Send for Matmul {}
unsafe impl Sync for Matmul {}

impl Drop for Matmul {
    fn drop(&mut self) {
        // SAFETY: owned, destroyed once, not running (the cache holds it in an Arc).
        unsafe { sys::dnnl_primitive_destroy(self.primitive) };
    }
}

/// Shape, strides and weights layout of a matmul: the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldc: usize,
    /// `Some((ldb, b_trans))` for a strided `b`; `None` for a [`PackedBf16`] weight.
    b: Option<(usize, bool)>,
    accumulate: bool,
}

impl Matmul {
    /// Compiles `c (m × n, f32) = a (m × k, bf16) · b (k × n, bf16) [+ c]`, with `b` strided
    /// or in `packed` (the layout a packed weight was reordered to).
    fn new(key: Key, packed: Option<&Md>) -> Result<Self, String> {
        let Key { m, n, k, lda, ldc, b, accumulate } = key;
        let (m, n, k) = (m as i64, n as i64, k as i64);
        let src = Md::strided([m, k], sys::BF16, [lda as i64, 1]);
        let dst = Md::strided([m, n], sys::F32, [ldc as i64, 1]);
        let strided;
        let weights = match (b, packed) {
            (Some((ldb, true)), _) => {
                strided = Md::strided([k, n], sys::BF16, [1, ldb as i64]);
                &strided
            }
            (Some((ldb, false)), _) => {
                strided = Md::strided([k, n], sys::BF16, [ldb as i64, 1]);
                &strided
            }
            (None, Some(md)) => md,
            (None, None) => unreachable!("a packed matmul is built with its layout"),
        };
        serial(|| {
            let mut attr = ptr::null_mut();
            let mut post_ops = ptr::null_mut();
            let mut pd = ptr::null_mut();
            // SAFETY: every handle is created here and destroyed below; the descriptors outlive
            // the calls that read them.
            unsafe {
                ok(sys::dnnl_primitive_attr_create(&mut attr), "attr_create");
                ok(sys::dnnl_primitive_attr_set_scratchpad_mode(attr, sys::SCRATCHPAD_USER), "scratchpad_mode");
                if accumulate {
                    ok(sys::dnnl_post_ops_create(&mut post_ops), "post_ops_create");
                    ok(sys::dnnl_post_ops_append_sum(post_ops, 1.0, 0, 0), "append_sum");
                    ok(sys::dnnl_primitive_attr_set_post_ops(attr, post_ops), "set_post_ops");
                }
                let status = sys::dnnl_matmul_primitive_desc_create(
                    &mut pd,
                    engine(),
                    src.0,
                    weights.0,
                    ptr::null_mut(),
                    dst.0,
                    attr,
                );
                if !post_ops.is_null() {
                    sys::dnnl_post_ops_destroy(post_ops);
                }
                sys::dnnl_primitive_attr_destroy(attr);
                if status != 0 {
                    return Err(format!("oneDNN has no bf16 matmul for {m}×{n}×{k} (status {status})"));
                }
                let mut info: *const c_char = ptr::null();
                sys::dnnl_primitive_desc_query(pd, sys::QUERY_IMPL_INFO, 0, (&mut info as *mut *const c_char).cast());
                let implementation =
                    if info.is_null() { String::new() } else { CStr::from_ptr(info).to_string_lossy().into_owned() };
                let scratch = Md::clone_of(sys::dnnl_primitive_desc_query_md(pd, sys::QUERY_SCRATCHPAD_MD, 0));
                let weights = Md::clone_of(sys::dnnl_primitive_desc_query_md(pd, sys::QUERY_WEIGHTS_MD, 0));
                let mut primitive = ptr::null_mut();
                let status = sys::dnnl_primitive_create(&mut primitive, pd);
                sys::dnnl_primitive_desc_destroy(pd);
                ok(status, "primitive_create");
                let scratch_size = scratch.size();
                Ok(Self { primitive, src, weights, dst, scratch, scratch_size, implementation })
            }
        })
    }

    /// Runs on `a`, `b` and `c`, whose bounds the caller checked against this matmul's key.
    ///
    /// # Safety
    /// `a`, `b` and `c` must hold the matrices the descriptors describe.
    unsafe fn run(&self, key: Key, a: *const u16, b: *const c_void, c: *mut f32) {
        STATE.with(|state| {
            let mut state = state.borrow_mut();
            let state = state.get_or_insert_with(|| {
                let mut stream = ptr::null_mut();
                // SAFETY: writes the new stream's handle.
                ok(unsafe { sys::dnnl_stream_create(&mut stream, engine(), sys::STREAM_DEFAULT) }, "stream_create");
                ThreadState { stream, scratch: Vec::new(), memories: HashMap::new() }
            });
            if state.scratch.len() < self.scratch_size {
                state.scratch.resize(self.scratch_size, 0);
            }
            if state.memories.len() >= CACHE_LIMIT {
                for memories in state.memories.drain().map(|(_, m)| m) {
                    // SAFETY: created below, not in use between calls.
                    memories.into_iter().for_each(|m| unsafe {
                        sys::dnnl_memory_destroy(m);
                    });
                }
            }
            let memories = *state.memories.entry(key).or_insert_with(|| {
                [&self.src, &self.weights, &self.dst, &self.scratch].map(|md| {
                    let mut memory = ptr::null_mut();
                    // SAFETY: a live descriptor (copied by the memory object); no data yet.
                    ok(
                        unsafe { sys::dnnl_memory_create(&mut memory, md.0, engine(), ptr::null_mut()) },
                        "memory_create",
                    );
                    memory
                })
            });
            let handles = [a as *mut c_void, b as *mut c_void, c.cast(), state.scratch.as_mut_ptr().cast()];
            for (memory, handle) in memories.iter().zip(handles) {
                // SAFETY: the handle points at memory of the descriptor's size (caller).
                ok(unsafe { sys::dnnl_memory_set_data_handle(*memory, handle) }, "memory_set_data_handle");
            }
            let names = [sys::ARG_SRC, sys::ARG_WEIGHTS, sys::ARG_DST, sys::ARG_SCRATCHPAD];
            let args: [sys::ExecArg; 4] = std::array::from_fn(|i| sys::ExecArg { arg: names[i], memory: memories[i] });
            serial(|| {
                // SAFETY: the arguments are bound above; the stream runs synchronously.
                ok(unsafe { sys::dnnl_primitive_execute(self.primitive, state.stream, 4, args.as_ptr()) }, "execute");
                ok(unsafe { sys::dnnl_stream_wait(state.stream) }, "stream_wait");
            });
        })
    }
}

type Cache = Mutex<HashMap<Key, Arc<Matmul>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

fn matmul(key: Key, packed: Option<&Md>) -> Result<Arc<Matmul>, String> {
    if let Some(hit) = cache().lock().expect("dnnl cache").get(&key) {
        return Ok(hit.clone());
    }
    // Compiled outside the lock: another thread may build the same one, and one copy is kept.
    let built = Arc::new(Matmul::new(key, packed)?);
    let mut cache = cache().lock().expect("dnnl cache");
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    Ok(cache.entry(key).or_insert(built).clone())
}

/// `c = a · op(b) + beta · c` (`beta` 0 or 1) with bf16 `a` and `b` on strided views, on the
/// calling thread. Panics on any other `beta` or a shape oneDNN has no matmul for.
pub fn bf16_gemm(a: MatRef<'_, u16>, b: MatRef<'_, u16>, b_trans: bool, mut c: MatMut<'_, f32>, beta: f32) {
    let (m, k) = (a.rows(), a.cols());
    let (bk, n) = if b_trans { (b.cols(), b.rows()) } else { (b.rows(), b.cols()) };
    assert_eq!(k, bk, "gemm: a is {m} × {k}, op(b) is {bk} × {n}");
    assert_eq!((c.rows(), c.cols()), (m, n), "gemm: c is {} × {}, needs {m} × {n}", c.rows(), c.cols());
    assert!(beta == 0.0 || beta == 1.0, "dnnl bf16 gemm: beta {beta} (0 or 1 only)");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if beta == 0.0 {
            (0..m).for_each(|i| c.row(i).fill(0.0));
        }
        return;
    }
    let key = Key {
        m,
        n,
        k,
        lda: a.stride().max(k),
        ldc: c.stride().max(n),
        b: Some((b.stride().max(if b_trans { k } else { n }), b_trans)),
        accumulate: beta == 1.0,
    };
    let op = matmul(key, None).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: the views hold their matrices at the strides in the key (checked by the views and
    // the shape asserts above).
    unsafe { op.run(key, a.as_ptr(), b.as_ptr().cast(), c.as_mut_ptr()) };
}

/// A linear layer's bf16 weight (`n × k`, used transposed) reordered into the layout oneDNN's
/// bf16 matmul reads.
pub struct PackedBf16 {
    n: usize,
    k: usize,
    /// The reordered weight; `offset` aligns its start to 64 bytes.
    data: Vec<u8>,
    offset: usize,
    layout: Md,
}

// SAFETY: immutable after construction; the descriptor is only read.
unsafe impl Send for PackedBf16 {}
unsafe impl Sync for PackedBf16 {}

impl PackedBf16 {
    /// Reorders `weight` (`n × k` bf16, row-major) once.
    pub fn new(weight: &[u16], n: usize, k: usize) -> Result<Self, String> {
        assert_eq!(weight.len(), n * k, "packed weight: {} values for {n} × {k}", weight.len());
        // The layout the kernel for a full chunk wants; the other row counts take the same one
        // (checked when each is compiled, and in the tests).
        let probe = Key { m: CHUNK, n, k, lda: k, ldc: n, b: None, accumulate: false };
        let want = Md::any([k as i64, n as i64], sys::BF16);
        let layout = Md::clone_of(Matmul::new(probe, Some(&want))?.weights.0);
        let size = layout.size();
        let mut data = vec![0u8; size + 64];
        let offset = data.as_ptr().align_offset(64);
        let plain = Md::strided([k as i64, n as i64], sys::BF16, [1, k as i64]);
        serial(|| {
            let mut pd = ptr::null_mut();
            let mut reorder = ptr::null_mut();
            let mut stream = ptr::null_mut();
            // SAFETY: `weight` holds `plain`'s n × k values and `data[offset..]` `size` bytes;
            // every handle is destroyed before returning.
            unsafe {
                ok(
                    sys::dnnl_reorder_primitive_desc_create(
                        &mut pd,
                        plain.0,
                        engine(),
                        layout.0,
                        engine(),
                        ptr::null_mut(),
                    ),
                    "reorder_primitive_desc_create",
                );
                let status = sys::dnnl_primitive_create(&mut reorder, pd);
                sys::dnnl_primitive_desc_destroy(pd);
                ok(status, "reorder primitive_create");
                ok(sys::dnnl_stream_create(&mut stream, engine(), sys::STREAM_DEFAULT), "stream_create");
                let mut from = ptr::null_mut();
                let mut to = ptr::null_mut();
                ok(
                    sys::dnnl_memory_create(&mut from, plain.0, engine(), weight.as_ptr() as *mut c_void),
                    "memory_create",
                );
                ok(
                    sys::dnnl_memory_create(&mut to, layout.0, engine(), data.as_mut_ptr().add(offset).cast()),
                    "memory",
                );
                let args =
                    [sys::ExecArg { arg: sys::ARG_SRC, memory: from }, sys::ExecArg { arg: sys::ARG_DST, memory: to }];
                ok(sys::dnnl_primitive_execute(reorder, stream, 2, args.as_ptr()), "reorder");
                ok(sys::dnnl_stream_wait(stream), "stream_wait");
                sys::dnnl_memory_destroy(from);
                sys::dnnl_memory_destroy(to);
                sys::dnnl_primitive_destroy(reorder);
                sys::dnnl_stream_destroy(stream);
            }
        });
        Ok(Self { n, k, data, offset, layout })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// `c = a · Wᵀ` for `a` (`m × k` bf16) and `c` (`m × n`), on the calling thread, chunk by chunk.
    pub fn gemm(&self, a: MatRef<'_, u16>, mut c: MatMut<'_, f32>) {
        let m = a.rows();
        assert_eq!(a.cols(), self.k, "packed gemm: a has {} columns, the weight {}", a.cols(), self.k);
        assert_eq!((c.rows(), c.cols()), (m, self.n), "packed gemm: c is {} × {}", c.rows(), c.cols());
        let mut start = 0;
        while start < m {
            let rows = CHUNK.min(m - start);
            let key =
                Key { m: rows, n: self.n, k: self.k, lda: a.stride(), ldc: c.stride(), b: None, accumulate: false };
            let op = matmul(key, Some(&self.layout)).unwrap_or_else(|e| panic!("{e}"));
            let (mut block, rest) = c.split_rows(rows);
            // SAFETY: `block` and `a.sub_rows` hold `rows` rows at the key's strides, and `data`
            // the reordered weight from `offset`.
            let w = self.data.as_ptr().wrapping_add(self.offset).cast();
            unsafe { op.run(key, a.sub_rows(start, rows).as_ptr(), w, block.as_mut_ptr()) };
            c = rest;
            start += rows;
        }
    }
}

/// Whether oneDNN has a bf16 matmul on this CPU: it needs AVX-512 (`avx512_core`, with bf16
/// emulated below AVX512-BF16); on an AVX2-only CPU every bf16 matmul is unimplemented. Probed
/// once by compiling a small one.
pub fn has_bf16() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let key = Key { m: 16, n: 16, k: 16, lda: 16, ldc: 16, b: Some((16, true)), accumulate: false };
        Matmul::new(key, None).is_ok()
    })
}

/// The implementation oneDNN picked for a packed `m × n × k` bf16 matmul (for the tests and the
/// start-up log), e.g. `brg:avx512_core_bf16`.
pub fn implementation(n: usize, k: usize, m: usize) -> Result<String, String> {
    let want = Md::any([k as i64, n as i64], sys::BF16);
    let key = Key { m, n, k, lda: k, ldc: n, b: None, accumulate: false };
    Ok(Matmul::new(key, Some(&want))?.implementation.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gemm::cpu::par_packed;
    use crate::model::gemm::{Bf16Support, Cpu};
    use crate::model::kernels::bf16;
    use crate::model::kernels::testing::{max_diff, random};

    /// `a · wᵀ` in f32 on the bf16-rounded inputs: what a bf16 GEMM with f32 accumulation computes.
    fn reference(a: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let (a, w) = (bf16::round_vec(a), bf16::round_vec(w));
        (0..m * n).map(|i| (0..k).map(|p| a[(i / n) * k + p] * w[(i % n) * k + p]).sum()).collect()
    }

    #[test]
    #[cfg_attr(not(pipeserve_host_avx512), ignore = "oneDNN has no bf16 matmul without AVX-512")]
    fn packed_weights_match_the_reference_for_every_row_count_and_split() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (n, k) = (72usize, 40usize);
        let w = random(n * k, 5, 1.0);
        let packed = PackedBf16::new(&bf16::to_vec(&w), n, k).unwrap();
        // One row, a chunk's tail, a full chunk, a chunk and a row, several chunks split over 2 threads.
        for m in [1usize, 37, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            let a = random(m * k, m as u64, 1.0);
            let want = reference(&a, &w, m, n, k);
            let ab = bf16::to_vec(&a);
            let mut serial = vec![f32::NAN; m * n];
            packed.gemm(MatRef::dense(&ab, m, k), MatMut::dense(&mut serial, m, n));
            let mut split = vec![f32::NAN; m * n];
            pool.install(|| par_packed(MatRef::dense(&ab, m, k), &packed, MatMut::dense(&mut split, m, n)));
            for got in [&serial, &split] {
                assert!(max_diff(&want, got) < 1e-4, "m = {m}: {}", max_diff(&want, got));
            }
        }
    }

    #[test]
    #[cfg_attr(not(pipeserve_host_avx512), ignore = "oneDNN has no bf16 matmul without AVX-512")]
    fn packed_gemm_writes_a_block_of_a_wider_output_in_place() {
        let (m, n, k, width) = (9usize, 32usize, 16usize, 50usize);
        let w = random(n * k, 1, 1.0);
        let packed = PackedBf16::new(&bf16::to_vec(&w), n, k).unwrap();
        let a = random(m * k, 2, 1.0);
        let ab = bf16::to_vec(&a);
        let mut out = vec![0.25f32; m * width];
        let (_, right) = MatMut::new(&mut out, m, width, width).split_cols(10);
        let (block, _) = right.split_cols(n);
        packed.gemm(MatRef::dense(&ab, m, k), block);
        let want = reference(&a, &w, m, n, k);
        for i in 0..m {
            assert!(max_diff(&want[i * n..(i + 1) * n], &out[i * width + 10..i * width + 10 + n]) < 1e-4);
            let outside = out[i * width..i * width + 10].iter().chain(&out[i * width + 10 + n..(i + 1) * width]);
            assert!(outside.into_iter().all(|&v| v == 0.25), "row {i} written outside its block");
        }
    }

    #[test]
    #[cfg_attr(not(pipeserve_host_avx512), ignore = "oneDNN has no bf16 matmul without AVX-512")]
    fn strided_products_accumulate_with_beta_one() {
        let (m, k, stride) = (5usize, 8usize, 24usize);
        let wide = bf16::to_vec(&random(m * stride, 4, 1.0));
        let a = MatRef::new(&wide[3..], m, k, stride);
        let b = MatRef::new(&wide[12..], m, k, stride);
        let mut c = vec![0.5f32; m * m];
        bf16_gemm(a, b, true, MatMut::dense(&mut c, m, m), 1.0);
        for i in 0..m {
            for j in 0..m {
                let dot: f32 = (0..k)
                    .map(|p| bf16::to_f32(wide[i * stride + 3 + p]) * bf16::to_f32(wide[j * stride + 12 + p]))
                    .sum();
                assert!((c[i * m + j] - (dot + 0.5)).abs() < 1e-4, "({i}, {j})");
            }
        }
    }

    /// On a CPU with bf16 arithmetic the packed path must run oneDNN's bf16 kernels, not its
    /// reference fallback (which would be correct and slow).
    #[test]
    #[cfg_attr(not(pipeserve_host_avx512), ignore = "oneDNN has no bf16 matmul without AVX-512")]
    fn a_bf16_cpu_gets_the_bf16_brgemm_kernel() {
        let name = implementation(1536, 384, CHUNK).unwrap();
        if Cpu::detect().bf16 == Bf16Support::None {
            println!("no bf16 arithmetic on this CPU: oneDNN runs {name:?}, not checked");
            return;
        }
        assert!(name.starts_with("brg:") && (name.contains("bf16") || name.contains("amx")), "{name}");
    }

    /// Where oneDNN has no bf16 matmul (an AVX2-only CPU) the probe says so, a packed weight is
    /// refused with the reason, and the packed encoder does not count oneDNN as a bf16 GEMM; on
    /// an AVX-512 CPU the probe finds one.
    #[test]
    fn the_bf16_probe_matches_the_cpu() {
        use crate::model::gemm::cpu::CpuGemm;
        assert_eq!(has_bf16(), cfg!(pipeserve_host_avx512));
        assert_eq!(CpuGemm::Dnnl.has_bf16(), has_bf16());
        if !has_bf16() {
            let err = PackedBf16::new(&[0; 16 * 16], 16, 16).err().expect("a packed bf16 weight without AVX-512");
            assert!(err.contains("no bf16 matmul"), "{err}");
            assert!(!CpuGemm::Dnnl.fast_bf16(Cpu::detect().bf16));
        }
    }
}
