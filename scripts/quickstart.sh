#!/usr/bin/env bash
# One command from a fresh clone: builds AMAS, fetches the embedded local model, and runs a real
# `research_report` task on the embedded defaults (SQLite under ./.amas, the local model).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-model.sh
cargo build --locked -p amas-cli
exec target/debug/amas run \
  --task-type research_report \
  --title "${1:-Rust for safety-critical software}" \
  --description "${2:-Why teams choose Rust for software that must not crash, and what it costs them.}"
