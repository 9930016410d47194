#!/usr/bin/env bash
# Side-by-side serving benchmark with an external load generator (`hey`): pipeserve and the
# PyTorch server of the guide's design (scripts/torch_server.py), each at the given flags, on the
# same machine, cells alternating between servers, medians over the repetitions, peak RSS.
#
#   scripts/bench-peers.sh OUT.md BIN MODEL_DIR   (env: SECONDS_PER_CELL=6 REPS=3 TORCH_PY=.venv-golden/bin/python ONLY=regex)
#
# Servers are the SERVERS array below ("name|command"); add or edit lines to compare others.
# Only loopback traffic, every cell bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 bin=$2 model=$3
secs=${SECONDS_PER_CELL:-6} reps=${REPS:-3} py=${TORCH_PY:-.venv-golden/bin/python}
short='A man is playing a guitar on the stage.'
long='The quick brown fox jumps over the lazy dog while the farmer watches from the porch of the old house. In the distance a train whistles as it crosses the long iron bridge above the river, and children run along the bank to wave at the passengers who look out of the windows at the green hills and the fields of wheat that move in the wind like the waves of a golden sea under the summer sun.'
# Mixed traffic: an 11-token and a 130-token input (all-MiniLM-L6-v2's tokenizer, special tokens
# included).
mix_short='A man is playing a guitar on stage.'
mix_long="$long Later that evening the farmer walked back along the road to the village, where the lights of the small houses were coming on one by one and the smell of fresh bread came from the bakery next to the old stone church."
SERVERS=(
  "pipeserve auto|$bin --model $model --port PORT --host 127.0.0.1"
  "pipeserve f32|$bin --model $model --port PORT --host 127.0.0.1 --dtype f32"
  "pipeserve bf16|$bin --model $model --port PORT --host 127.0.0.1 --dtype bf16"
  "pipeserve f32 fifo|$bin --model $model --port PORT --host 127.0.0.1 --dtype f32 --batch-policy fifo"
  "torch f32|$py scripts/torch_server.py --model $model --port PORT --dtype f32"
  "torch bf16|$py scripts/torch_server.py --model $model --port PORT --dtype bf16"
)
# ONLY (a regex) keeps the servers whose name matches, e.g. ONLY='pipeserve f32|torch f32'.
if [[ -n ${ONLY:-} ]]; then
  kept=()
  for entry in "${SERVERS[@]}"; do [[ ${entry%%|*} =~ $ONLY ]] && kept+=("$entry"); done
  SERVERS=("${kept[@]}")
fi
results=$(mktemp)
port=18500
for rep in $(seq 1 "$reps"); do
  for entry in "${SERVERS[@]}"; do
    name=${entry%%|*} cmd=${entry#*|}
    port=$((port + 1))
    log=$(mktemp)
    ${cmd//PORT/$port} >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 240); do
      curl -sf -o /dev/null -X POST -H 'content-type: application/json' -d '{"inputs":"warm"}' "http://127.0.0.1:$port/embed" && break
      sleep 0.5
    done
    for text in short long; do
      body=$(printf '{"inputs": "%s"}' "${!text}")
      # A short warm-up at the cell's concurrency, then the measured cell.
      for c in 1 32; do
        timeout 30 hey -z 1s -c "$c" -m POST -T application/json -d "$body" "http://127.0.0.1:$port/embed" >/dev/null
        r=$(timeout $((secs + 30)) hey -z "${secs}s" -c "$c" -m POST -T application/json -d "$body" "http://127.0.0.1:$port/embed")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$r")
        p50=$(awk '/ 50%% in/ || / 50% in/ {print $3 * 1000}' <<<"$r")
        codes=$(awk '/Status code distribution/ {f=1; next} f && /\[/ {printf "%s%s", sep, $0; sep=","}' <<<"$r" | tr -s ' ')
        echo "$name|$text|$c|$rps|$p50|$codes" >>"$results"
      done
    done
    # Mixed lengths (the issue's 11- and 130-token inputs): two hey processes at once, 16 clients
    # each, so the server's queue holds both lengths; the cell's req/s is their sum.
    mixed_short=$(printf '{"inputs": "%s"}' "$mix_short") mixed_long=$(printf '{"inputs": "%s"}' "$mix_long")
    timeout 30 hey -z 1s -c 16 -m POST -T application/json -d "$mixed_long" "http://127.0.0.1:$port/embed" >/dev/null
    a=$(mktemp) b=$(mktemp)
    timeout $((secs + 30)) hey -z "${secs}s" -c 16 -m POST -T application/json -d "$mixed_short" "http://127.0.0.1:$port/embed" >"$a" &
    other=$!
    timeout $((secs + 30)) hey -z "${secs}s" -c 16 -m POST -T application/json -d "$mixed_long" "http://127.0.0.1:$port/embed" >"$b"
    wait "$other" || true
    rps=$(awk '/Requests\/sec/ {s += $2} END {print s}' "$a" "$b")
    p50=$(awk '/ 50% in/ {print $3 * 1000}' "$b")
    codes=$(awk 'FNR == 1 {f = 0} /Status code distribution/ {f = 1; next} f && /\[/ {printf "%s%s", sep, $0; sep = ","}' "$a" "$b" | tr -s ' ')
    echo "$name|mixed|32|$rps|$p50|$codes" >>"$results"
    rm -f "$a" "$b"
    rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)
    # The PyTorch server's work happens in its process; pipeserve is one process too.
    echo "$name|rss|0|$rss|0|" >>"$results"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -m1 -o '"dtype[^,]*' "$log" >>"$results.dtypes" 2>/dev/null || true
    rm -f "$log"
  done
done
python3 - "$results" "$out" "$secs" "$reps" <<'EOF'
import statistics, sys, collections, subprocess, re
path, out, secs, reps = sys.argv[1:]
cells = collections.defaultdict(list)
codes = collections.defaultdict(collections.Counter)
for line in open(path):
    name, text, c, rps, p50, code = line.rstrip("\n").split("|", 5)
    cells[(name, text, c)].append((float(rps), float(p50)))
    for status, count in re.findall(r"\[(\d+)\]\s+(\d+) responses", code):
        codes[name][status] += int(count)
names = list(dict.fromkeys(k[0] for k in cells))
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
lines = [f"CPU: {model}; {secs} s cells, {reps} alternating repetitions, medians (hey), the repetitions' range in brackets.", "",
         "| load | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
for text in ["short", "long", "mixed"]:
    for c in (["32"] if text == "mixed" else ["1", "32"]):
        row = []
        for n in names:
            v = cells.get((n, text, c), [])
            rps = statistics.median(x[0] for x in v) if v else 0
            p50 = statistics.median(x[1] for x in v) if v else 0
            spread = f" ({min(x[0] for x in v):.0f}–{max(x[0] for x in v):.0f})" if len(v) > 1 else ""
            row.append(f"{rps:.1f} req/s{spread}, p50 {p50:.1f} ms" if c == "1" else f"{rps:.1f} req/s{spread}")
        label = "mixed 11 + 130 tokens (16 + 16 clients)" if text == "mixed" else text
        lines.append(f"| {label}, c={c} | " + " | ".join(row) + " |")
lines.append("| peak RSS | " + " | ".join(f"{statistics.median(x[0] for x in cells[(n, 'rss', '0')]):.0f} MiB" for n in names) + " |")
lines.append("")
lines.append("Responses by status: " + "; ".join(f"{n}: " + ", ".join(f"{k} × {v}" for k, v in sorted(codes[n].items())) for n in names))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
