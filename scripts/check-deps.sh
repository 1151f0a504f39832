#!/usr/bin/env bash
# Dependency-direction check (crate staircase, unused internal dependencies) and its own tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m unittest discover -s scripts/tests -p 'test_check_deps.py' -q
python3 scripts/check_deps.py "$@"
