#!/usr/bin/env bash
# Runs the whole test suite: fetches/generates the test models (pinned, sha256-checked), then
# every cargo test (unit, golden, integration). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/fetch_models.py
cargo test --locked "$@"
