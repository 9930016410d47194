#!/usr/bin/env bash
# Installs the native GEMM library that the `openblas` cargo feature links, from Debian bookworm's
# packages (idempotent):
#
#   scripts/native-gemm.sh && cargo build --release --features openblas
#
# libopenblas-dev 0.3.21 (pthread, DYNAMIC_ARCH; linked statically). oneDNN (the `dnnl` feature)
# comes from scripts/onednn.sh, MKL from scripts/mkl.sh.
set -euo pipefail
need=()
for pkg in libopenblas-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
