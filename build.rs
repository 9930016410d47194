//! Compiles the vendored .proto files of the gRPC services (proto/) with protox, a protobuf
//! compiler in Rust, so a build needs no system `protoc`. Links the native GEMM libraries of the `openblas` feature (Debian's, installed by
//! `scripts/native-gemm.sh`) and the `dnnl` feature (Intel's wheels, installed by `scripts/onednn.sh`); the `mkl` feature is linked by
//! candle's intel-mkl-src. A missing library fails here with that hint.

use std::path::Path;

const LIBDIR: &str = "/usr/lib/x86_64-linux-gnu";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    compile_protos();
    // The bf16 quality gate runs where the CPU that builds the tests (and runs them, in CI) has a
    // bf16 dot product; elsewhere it is ignored and listed, not passed (tests/engine/bf16.rs).
    println!("cargo:rustc-check-cfg=cfg(pipeserve_host_bf16)");
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap_or_default();
    if flags.split_whitespace().any(|f| f == "amx_bf16" || f == "avx512_bf16") {
        println!("cargo:rustc-cfg=pipeserve_host_bf16");
    }
    // oneDNN's bf16 matmul needs AVX-512 (`avx512_core`): its bf16 tests run where the host has it.
    println!("cargo:rustc-check-cfg=cfg(pipeserve_host_avx512)");
    if ["avx512f", "avx512bw", "avx512vl", "avx512dq"].iter().all(|f| flags.split_whitespace().any(|g| g == *f)) {
        println!("cargo:rustc-cfg=pipeserve_host_avx512");
    }
    // Likewise the int8 gate, where the CPU has VNNI (without it int8 is refused: src/model/gemm).
    println!("cargo:rustc-check-cfg=cfg(pipeserve_host_vnni)");
    if flags.split_whitespace().any(|f| f == "avx512_vnni" || f == "avx_vnni") {
        println!("cargo:rustc-cfg=pipeserve_host_vnni");
    }
    println!("cargo:rerun-if-env-changed=PIPESERVE_NATIVE_LIBDIR");
    let libdir = std::env::var("PIPESERVE_NATIVE_LIBDIR").unwrap_or_else(|_| LIBDIR.into());
    if std::env::var_os("CARGO_FEATURE_OPENBLAS").is_some() && std::env::var_os("CARGO_FEATURE_MKL").is_some() {
        // Both static libraries define the BLAS symbols (`cblas_sgemm`, `sgemm_`, ...); the linker
        // keeps one copy, OpenBLAS's, so `--gemm mkl` and candle's MKL matmul would silently run
        // OpenBLAS (seen in a profile: docs/benchmarks.md, round 4).
        panic!("the `mkl` and `openblas` features cannot be built together: both define cblas_sgemm; build and measure each on its own");
    }
    if std::env::var_os("CARGO_FEATURE_OPENBLAS").is_some() {
        // The pthread build of OpenBLAS 0.3.21 (DYNAMIC_ARCH), statically: the binary needs nothing.
        let dir = format!("{libdir}/openblas-pthread");
        require(&format!("{dir}/libopenblas.a"), "libopenblas-dev");
        println!("cargo:rustc-link-search=native={dir}");
        println!("cargo:rustc-link-lib=static=openblas");
        println!("cargo:rustc-link-lib=dylib=pthread");
    }
    println!("cargo:rerun-if-env-changed=PIPESERVE_DNNL_DIR");
    if std::env::var_os("CARGO_FEATURE_DNNL").is_some() {
        // oneDNN 3.2 from Intel's wheels (scripts/onednn.sh), shared (GNU OpenMP): the binary finds
        // it through its rpath, the install folder or else its own (`$ORIGIN`, where the container
        // image puts it), and needs libgomp1.
        let root = std::env::var("PIPESERVE_DNNL_DIR")
            .unwrap_or_else(|_| format!("{}/.tools/onednn", std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()));
        let dir = format!("{root}/lib");
        if !Path::new(&format!("{dir}/libdnnl.so")).exists() {
            panic!("{dir}/libdnnl.so is missing: run eval \"$(scripts/onednn.sh)\" (installs oneDNN from PyPI)");
        }
        println!("cargo:rustc-link-search=native={dir}");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}:$ORIGIN");
    }
}

/// The gRPC services' messages and server traits, from the vendored protos (servers only: the
/// tests' clients are Python's).
fn compile_protos() {
    println!("cargo:rerun-if-changed=proto");
    let files =
        protox::compile(["grpc_predict_v2.proto", "tei.proto"], ["proto"]).unwrap_or_else(|e| panic!("proto/: {e}"));
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        .compile_fds(files)
        .unwrap_or_else(|e| panic!("generating the gRPC code: {e}"));
}

fn require(path: &str, package: &str) {
    if !Path::new(path).exists() {
        panic!("{path} is missing: run scripts/native-gemm.sh (installs {package})");
    }
}
