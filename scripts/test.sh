#!/usr/bin/env bash
# Runs the whole test suite: fetches/generates the test models (pinned, sha256-checked) and the
# Python OTLP receiver's packages, then every cargo test (unit, golden, integration). Extra
# arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/fetch_models.py
# The OTLP receiver (tests/server/traces.rs) and the real client libraries (tests/server/clients.rs:
# OpenAI SDK, huggingface_hub, LangChain) live in a repo-local venv, reinstalled only when their
# pinned requirements change; --no-cache-dir keeps pip from writing outside the repo.
if ! cmp -s scripts/requirements-test.txt .venv/requirements-test.txt; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt .venv/requirements-test.txt
fi
cargo test --locked "$@"
