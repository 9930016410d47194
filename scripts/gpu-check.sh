#!/usr/bin/env bash
# The GPU check of the performance issue (part 5), in two halves, because the GPU machine the
# `device` tool lends has no Rust and no network and takes at most 64 MiB along:
#
#   scripts/gpu-check.sh pack    # here: builds the `cuda` server and the load bench, packs them with
#                                # all-MiniLM-L6-v2 (weights stored as f16: 43 MB instead of 87)
#                                # into target-gpu/bundle.tar.xz, and fails if it is over 60 MiB
#   scripts/gpu-check.sh run     # there (device tool, carry target-gpu/bundle.tar.xz): unpacks and
#                                # writes everything under $OUT
#
# `run` does three things, each logged to its own file:
#   (a) cuda:0 against the CPU, through the real server: the same texts through /embed on a CPU
#       server and on cuda:0 in f32 (max difference ≤ 1e-3) and bf16 (cosine ≥ 0.999): the gate of
#       tests/engine/gpu.rs, which needs cargo there;
#   (b) the load bench against the server on cuda:0, f32 and f16: short and long inputs at
#       concurrency 1, 32, 128 (throughput, p50, p99);
#   (c) the same on the CPU with all 16 cores, for comparison.
# The server needs the machine's driver (libcuda.so.1) and CUDA 13's runtime libraries (libcudart,
# libcublas, libcublasLt, libcurand, libnvrtc); `run` records `ldd` and `nvidia-smi` first. The
# f16-stored weights are widened on load, so the CPU and GPU runs of (a) share the same weights.
# Numbers go to docs/benchmarks.md ("GPU worker") with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=target-gpu/stage
bundle=target-gpu/bundle.tar.xz

pack() {
  python3 scripts/fetch_models.py --only all-MiniLM-L6-v2
  # The load bench drives the server over HTTP and needs no CUDA itself: a plain release build.
  local bench
  bench=$(cargo bench --locked --no-run --bench load 2>&1 | sed -n 's/.*Executable benches\/load.rs (\(.*\))/\1/p')
  [[ -x "$bench" ]] || { echo "no load bench binary" >&2; exit 1; }
  eval "$(scripts/cuda.sh)"
  CARGO_TARGET_DIR=target-cuda cargo build --release --locked --features cuda
  rm -rf "$stage" && mkdir -p "$stage/model"
  cp target-cuda/release/pipeserve "$stage/pipeserve"
  cp "$bench" "$stage/load"
  strip "$stage/load"
  local src=models/all-MiniLM-L6-v2
  (cd "$src" && find . -type f ! -name model.safetensors ! -name '*.md' -exec cp --parents {} "$OLDPWD/$stage/model/" \;)
  python3 - "$src/model.safetensors" "$stage/model/model.safetensors" <<'EOF'
# f32 tensors to f16, in the safetensors layout (8-byte header length, JSON header, raw data).
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
out, blobs, offset = {}, [], 0
for name, t in sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]):
    a, b = t["data_offsets"]
    raw = data[a:b]
    if t["dtype"] == "F32":
        count = len(raw) // 4
        raw = struct.pack(f"<{count}e", *struct.unpack(f"<{count}f", raw))
        t = dict(t, dtype="F16")
    out[name] = dict(t, data_offsets=[offset, offset + len(raw)])
    blobs.append(raw)
    offset += len(raw)
if "__metadata__" in header:
    out["__metadata__"] = header["__metadata__"]
head = json.dumps(out, separators=(",", ":")).encode()
head += b" " * (-len(head) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
EOF
  cp scripts/gpu-check.sh "$stage/"
  tar -C target-gpu -cJf "$bundle" stage
  local size
  size=$(stat -c %s "$bundle")
  echo "$bundle: $((size / 1048576)) MiB"
  ((size <= 60 * 1048576)) || { echo "over 60 MiB: the device tool carries 64 MiB in all" >&2; exit 1; }
}

# Starts the staged server with extra flags on a free port; echoes "PID URL".
serve() {
  local log
  log=$(mktemp)
  "$stage/pipeserve" --model "$stage/model" --host 127.0.0.1 --port 0 --json-logs "$@" >"$log" 2>&1 &
  local pid=$! address=""
  for _ in $(seq 600); do
    address=$(sed -n 's/.*"message":"listening".*"address":"\([^"]*\)".*/\1/p' "$log" | head -n1)
    if [[ -n "$address" ]] && grep -q '"message":"ready"' "$log"; then
      echo "$pid http://$address"
      return
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  cat "$log" >&2
  echo "server $* did not start" >&2
  return 1
}

run() {
  local out=${OUT:-target-gpu/out}
  mkdir -p "$out"
  [[ -d "$stage" ]] || tar -C target-gpu -xJf "$bundle"
  { nvidia-smi || true; ldd "$stage/pipeserve" || true; } >"$out/machine.txt" 2>&1
  lscpu >>"$out/machine.txt"

  # (a) cuda:0 against the CPU, through /embed.
  local cpu gpu bf16
  cpu=$(serve) && gpu=$(serve --device cuda:0) && bf16=$(serve --device cuda:0 --dtype bf16)
  local gate=0
  python3 - "${cpu#* }" "${gpu#* }" "${bf16#* }" >"$out/equivalence.txt" 2>&1 <<'EOF' || gate=1
import json, math, sys, urllib.request
texts = ["Hello world", "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
         "Serving encoder models well means batching requests dynamically while keeping latency low."]
def embed(base):
    body = json.dumps({"inputs": texts}).encode()
    req = urllib.request.Request(base + "/embed", body, {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))
cpu, gpu, bf16 = (embed(b) for b in sys.argv[1:4])
diff = max(abs(x - y) for a, b in zip(cpu, gpu) for x, y in zip(a, b))
cos = min(sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)) for a, b in zip(cpu, bf16))
print(f"f32 on cuda:0, largest difference to cpu: {diff:.2e} (gate 1e-3)")
print(f"bf16 on cuda:0, lowest cosine to cpu f32: {cos:.6f} (gate 0.999)")
sys.exit(0 if diff <= 1e-3 and cos >= 0.999 else 1)
EOF
  kill "${cpu%% *}" "${gpu%% *}" "${bf16%% *}" 2>/dev/null || true
  cat "$out/equivalence.txt"

  # (b) and (c): the load bench, one server configuration at a time.
  local name args
  for name in cuda-f32 cuda-f16 cpu-16; do
    case $name in
      cuda-f32) args="--device cuda:0" ;;
      cuda-f16) args="--device cuda:0 --dtype f16" ;;
      cpu-16) args="" ;;
    esac
    TEST_SERVER_BIN="$stage/pipeserve" BENCH_MODEL="$stage/model" BENCH_ARGS="$args" BENCH_MODES=length \
      BENCH_INPUTS=short,long BENCH_CONCURRENCY=1,32,128 BENCH_SECONDS=5 BENCH_PLOT= \
      BENCH_JSON="$out/load-$name.jsonl" "$stage/load" >"$out/load-$name.txt" 2>&1 || echo "load bench $name failed"
    grep '^| length' "$out/load-$name.txt" || true
  done
  return "$gate"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: scripts/gpu-check.sh pack|run" >&2; exit 2 ;;
esac
