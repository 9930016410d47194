#!/usr/bin/env bash
# Installs oneDNN 3.2 (CPU, GNU OpenMP) from Intel's PyPI wheels into .tools/onednn (git-ignored),
# once, and prints the environment the `dnnl` feature builds with:
#
#   eval "$(scripts/onednn.sh)" && cargo build --release --features dnnl
#
# Wheels are pinned and sha256-checked, then deleted. The library is shared (libdnnl.so.3, ~55 MB; it needs the
# system's libgomp1); the build records its folder as the binary's rpath.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.tools/onednn"
version=2023.2.0
wheels=(
  "onednn_cpu_gomp-$version-py2.py3-none-manylinux1_x86_64.whl 2f22a54d6a890ed14bfa185d42a4be65d8b5b1df85dc1f0f3a9abe31620416fb"
  "onednn_devel_cpu_gomp-$version-py2.py3-none-manylinux1_x86_64.whl 9763c69e8c907e119056bd52ad918ca84ac9ba939d130a99dfa95ccca3e5e284"
)
if [[ ! -f "$root/.complete-$version" ]]; then
  cache="$PWD/.tools/whl-onednn"
  mkdir -p "$cache"
  (cd "$cache" && python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    "onednn-cpu-gomp==$version" "onednn-devel-cpu-gomp==$version" >&2)
  rm -rf "$root" && mkdir -p "$root"
  for entry in "${wheels[@]}"; do
    read -r file sum <<<"$entry"
    echo "$sum  $cache/$file" | sha256sum --check --quiet >&2
    # A wheel's data files live under NAME.data/data/{lib,include}.
    python3 - "$cache/$file" "$root" <<'PY'
import sys, zipfile, os
wheel, root = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        parts = info.filename.split("/")
        if len(parts) < 4 or not parts[0].endswith(".data") or parts[1] != "data" or info.is_dir():
            continue
        rel = "/".join(parts[2:])
        if not (rel.startswith("include/") or rel == "lib/libdnnl.so.3"):
            continue
        target = os.path.join(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            dst.write(src.read())
PY
  done
  # The wheel stores the library three times (no symlinks in a zip); the linker wants libdnnl.so.
  ln -sf libdnnl.so.3 "$root/lib/libdnnl.so"
  rm -rf "$cache"
  touch "$root/.complete-$version"
fi
echo "export PIPESERVE_DNNL_DIR=$root"
