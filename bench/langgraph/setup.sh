#!/usr/bin/env bash
# Makes (or refreshes) the LangGraph bench venv and prints its python's path on stdout.
# Where: $AMAS_BENCH_VENV, else ~/.cache/amas-bench/lg-venv. Re-runs are cheap: pip skips
# what requirements.txt already pins.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${AMAS_BENCH_VENV:-$HOME/.cache/amas-bench/lg-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
echo "$venv/bin/python"
