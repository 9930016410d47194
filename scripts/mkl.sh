#!/usr/bin/env bash
# Installs Intel MKL (static) and Intel OpenMP from PyPI into .tools/mkl (git-ignored), once, and
# prints the environment the `mkl` feature builds with:
#
#   eval "$(scripts/mkl.sh)" && cargo build --release --features mkl
#
# Wheels are pinned and sha256-checked. Only the static OpenMP runtime (libiomp5.a) is unpacked, so
# the linker cannot pick libiomp5.so and the binary needs no Intel library at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.tools/mkl"
version=2026.2.0
wheels=(
  "mkl_static-$version-py2.py3-none-manylinux_2_28_x86_64.whl 090e439bf202b45579c75d2ba50ff7ead05752d553a06aba79c3ed2b5247921b"
  "mkl_include-$version-py2.py3-none-manylinux_2_28_x86_64.whl 889cc72057a1671fee1e9a8beb2fc4e0d222ba78c08b6d69584dae03fbec4822"
  "intel_openmp-$version-py2.py3-none-manylinux_2_28_x86_64.whl 2308a1a3e74718a9cd8cccf218c34d8cd80b43d3b89dfbb01b38dee205c50980"
)
if [[ ! -f "$root/.complete-$version" ]]; then
  cache="$PWD/.tools/whl-mkl"
  mkdir -p "$cache"
  (cd "$cache" && python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    "mkl-static==$version" "mkl-include==$version" "intel-openmp==$version" >&2)
  rm -rf "$root" && mkdir -p "$root"
  for entry in "${wheels[@]}"; do
    read -r file sum <<<"$entry"
    echo "$sum  $cache/$file" | sha256sum --check --quiet >&2
    # A wheel's data files live under NAME.data/data/{lib,include}; MKLROOT wants lib/ and include/.
    python3 - "$cache/$file" "$root" <<'EOF'
import sys, zipfile, os
wheel, root = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        parts = info.filename.split("/")
        if len(parts) < 4 or not parts[0].endswith(".data") or parts[1] != "data":
            continue
        rel = "/".join(parts[2:])
        name = parts[-1]
        keep = rel.startswith("include/") or (rel.startswith("lib/") and name.endswith(".a"))
        # Static OpenMP only; the stubs library would shadow the real one.
        if not keep or name.startswith("libiompstubs") or info.is_dir():
            continue
        target = os.path.join(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            dst.write(src.read())
EOF
  done
  touch "$root/.complete-$version"
fi
echo "export MKLROOT=$root"
