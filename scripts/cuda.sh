#!/usr/bin/env bash
# Installs a CUDA 13.0 build toolkit from PyPI into .tools/cuda (git-ignored), once, and prints the
# environment the `cuda` feature builds with (for Hopper, compute capability 9.0):
#
#   eval "$(scripts/cuda.sh)" && CARGO_TARGET_DIR=target-cuda cargo build --release --features cuda
#
# PyPI's CUDA 13 wheels carry nvcc, cicc, ptxas and the headers and libraries under nvidia/cu13/.
# They carry no driver, so the linker gets a stub libcuda.so (every driver entry point cudarc
# declares, each an empty function) with the driver's soname: at run time the real libcuda.so.1 of
# the GPU machine's driver is loaded instead. The binary also needs libcudart, libcublas(Lt),
# libcurand and libnvrtc of CUDA 13 at run time (the GPU machine's toolkit, or LD_LIBRARY_PATH at
# .tools/cuda/nvidia/cu13/lib).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.tools/cuda"
cu="$root/nvidia/cu13"
packages=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
)
if [[ ! -f "$root/.complete" ]]; then
  rm -rf "$root"
  python3 -m pip install --quiet --no-deps --disable-pip-version-check --target "$root" "${packages[@]}" >&2
  # The linker looks for unversioned names.
  for lib in cudart cublas cublasLt curand nvrtc; do
    so=$(cd "$cu/lib" && ls "lib$lib.so."* | grep -v builtins | sort | head -n1)
    ln -sf "$so" "$cu/lib/lib$lib.so"
  done
  # Driver stub from the entry points of the cudarc version in Cargo.lock.
  cudarc_version=$(grep -A1 '^name = "cudarc"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
  cargo fetch --locked >&2
  sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$cudarc_version"/src/driver/sys | head -n1)
  mkdir -p "$cu/lib/stubs"
  grep -oE 'fn cu[A-Za-z0-9_]+' "$sys/mod.rs" | sort -u | sed 's/^fn \(.*\)$/void \1(void) {}/' > "$cu/lib/stubs/libcuda.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cu/lib/stubs/libcuda.so" "$cu/lib/stubs/libcuda.c"
  touch "$root/.complete"
fi
echo "export CUDA_ROOT=$cu"
echo "export PATH=$cu/bin:\$PATH"
echo "export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}"
