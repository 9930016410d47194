#!/usr/bin/env bash
# Installs the native GEMM libraries that the `openblas` and `dnnl` cargo features link, from
# Debian bookworm's packages (idempotent):
#
#   scripts/native-gemm.sh && cargo build --release --features openblas,dnnl
#
# libopenblas-dev 0.3.21 (pthread, DYNAMIC_ARCH; linked statically) and libdnnl-dev 2.6.3
# (oneDNN, OpenMP; shared, so a runtime image needs libdnnl2). MKL comes from scripts/mkl.sh.
set -euo pipefail
need=()
for pkg in libopenblas-dev libdnnl-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
