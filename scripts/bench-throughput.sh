#!/usr/bin/env bash
# The throughput bench (docs/performance.md): the research -> analysis -> synthesis workflow
# through AMAS's HTTP API and through LangGraph with its SQLite checkpointer, both against the
# same instant mock model over loopback HTTP, in one run. Prints a table of tasks/s (one task at
# a time, and N concurrent clients) with AMAS/LangGraph ratios, and stores the run as JSON under
# bench/results/.
#
# Usage: scripts/bench-throughput.sh [--quick] [--profile] [--no-build] [--out FILE]
#   --quick     fewer tasks (a smoke run; its numbers are noisy)
#   --profile   afterwards, profile `amas serve` during a concurrent run: `perf record -g`
#               (kernel/user split, top threads and symbols) and `strace -c -f` (fsync and futex
#               calls per task); adds a "profile" object to the JSON
#   --no-build  use the release binaries already built
#   --out FILE  where the JSON goes (default bench/results/<UTC date>-<commit>.json)
# Sizes: BENCH_SEQUENTIAL_TASKS (300), BENCH_CONCURRENT_TASKS (2000), BENCH_CLIENTS (32).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

quick=0 profile=0 build=1 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --profile) profile=1 ;;
        --no-build) build=0 ;;
        --out) out="$2"; shift ;;
        *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done
seq_tasks=${BENCH_SEQUENTIAL_TASKS:-300}
conc_tasks=${BENCH_CONCURRENT_TASKS:-2000}
clients=${BENCH_CLIENTS:-32}
if [ "$quick" = 1 ]; then seq_tasks=${BENCH_SEQUENTIAL_TASKS:-40} conc_tasks=${BENCH_CONCURRENT_TASKS:-200}; fi

if [ "$build" = 1 ]; then
    cargo build --release --locked --workspace --bins
fi
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
python=$(bench/langgraph/setup.sh)

# Both sides' databases on the same (real) filesystem, never a tmpfs: fsync must cost.
work="$target_dir/bench-throughput/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$work/bin"
echo "work dir: $work" >&2
# A copy of the binaries: a shared target dir may be rebuilt by someone else mid-run.
for b in amas amas-mock-openai amas-bench-throughput; do cp "$target_dir/release/$b" "$work/bin/"; done
bin="$work/bin"

# The mock model, one reply per agent (sets `mock`).
# shellcheck source=bench/mock.sh
. bench/mock.sh

echo "== LangGraph ($seq_tasks sequential, $conc_tasks with $clients clients) ==" >&2
"$python" bench/langgraph/workload.py --base-url "$mock" --dir "$work/langgraph" \
    --sequential-tasks "$seq_tasks" --concurrent-tasks "$conc_tasks" --clients "$clients" \
    >"$work/langgraph.json"

echo "== AMAS ($seq_tasks sequential, $conc_tasks with $clients clients) ==" >&2
"$bin/amas-bench-throughput" --amas "$bin/amas" --mock "$mock" --work-dir "$work/amas" \
    --sequential-tasks "$seq_tasks" --concurrent-tasks "$conc_tasks" --clients "$clients" \
    >"$work/amas.json"

echo '{}' >"$work/profile.json"
if [ "$profile" = 1 ]; then
    command -v perf >/dev/null || { echo "--profile needs perf" >&2; exit 1; }
    echo "== profile: perf record -g of amas serve, concurrent ==" >&2
    # cpu-clock: a software event, so this works in VMs without hardware counters.
    "$bin/amas-bench-throughput" --amas "$bin/amas" --mock "$mock" --work-dir "$work/perf" \
        --modes concurrent --concurrent-tasks "$conc_tasks" --clients "$clients" \
        --profile-cmd "perf record -q -g -e cpu-clock -F 1999 -o $work/perf.data -p {pid}" \
        >"$work/perf-run.json"
    perf report -i "$work/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null >"$work/perf-dso.txt"
    perf report -i "$work/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null >"$work/perf-comm.txt"
    perf report -i "$work/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null >"$work/perf-comm-dso.txt"
    perf report -i "$work/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null >"$work/perf-sym.txt"
    strace_tasks=$((conc_tasks < 500 ? conc_tasks : 500))
    if command -v strace >/dev/null; then
        echo "== profile: strace -c -f of amas serve, concurrent ($strace_tasks tasks) ==" >&2
        "$bin/amas-bench-throughput" --amas "$bin/amas" --mock "$mock" --work-dir "$work/strace" \
            --modes concurrent --concurrent-tasks "$strace_tasks" --clients "$clients" \
            --profile-cmd "strace -c -f -o $work/strace.txt -p {pid}" >"$work/strace-run.json"
    fi
    python3 bench/report.py profile "$work" "$strace_tasks" >"$work/profile.json"
fi

if [ -z "$out" ]; then
    out="bench/results/$(date -u +%Y-%m-%d)-$(git rev-parse --short HEAD).json"
fi
mkdir -p "$(dirname "$out")"
python3 bench/report.py combine "$work" "$out" "$seq_tasks" "$conc_tasks" "$clients"
