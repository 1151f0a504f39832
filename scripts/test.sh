#!/usr/bin/env bash
# Runs every test of AMAS: installs what the tests need (the local model, promtool/amtool),
# then the whole suite and the policy bundle's YAML cases. Tiers and profiles: docs/testing.md.
# Needs PostgreSQL on 127.0.0.1:5432 (database `test`, trust auth) for the PostgreSQL backends'
# tests; set AMAS_TEST_DATABASE_URL to point elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-model.sh
scripts/install-observability-tools.sh
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked
# --workspace, not -p: a package subset unifies features differently and builds every
# dependency a second time (twice the disk, twice the time).
cargo build --locked --workspace --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
"$target_dir/debug/amas" policy test
# CI uses the `ci` profile (.config/nextest.toml): no retries, every failure reported, JUnit at
# target/nextest/ci/junit.xml. Extra arguments pass through (e.g. `--profile unit`).
if [ "${CI:-}" = "true" ]; then
    cargo nextest run --locked --workspace --profile ci "$@"
else
    cargo nextest run --locked --workspace --no-fail-fast "$@"
fi
