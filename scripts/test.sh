#!/usr/bin/env bash
# Runs every test of AMAS: fetches what the tests need (the local model), then the whole suite.
# Needs PostgreSQL on 127.0.0.1:5432 (database `test`, trust auth) for the PostgreSQL backend's
# conformance tests; set AMAS_TEST_DATABASE_URL to point elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-model.sh
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked
cargo build --locked -p amas-cli -p amas-test-util --bins
cargo nextest run --locked --workspace --all-targets --no-fail-fast
