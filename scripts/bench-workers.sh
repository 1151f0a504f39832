#!/usr/bin/env bash
# The scale-out bench (docs/performance.md, issue 14): tasks/s of the research -> analysis ->
# synthesis workflow with an instant mock model, through the HTTP API with N concurrent
# clients, on (a) one process on SQLite (the embedded default), (b) one `--role api` process
# and 1, 2 and 4 `--role worker` processes on one PostgreSQL. Same mock, same machine, one
# run; ratios against the SQLite figure. Stores the run as JSON under bench/results/.
#
# Usage: scripts/bench-workers.sh [--quick] [--no-build] [--out FILE]
# Sizes: BENCH_CONCURRENT_TASKS (1000), BENCH_CLIENTS (32), BENCH_WORKERS ("1 2 4").
# The database: AMAS_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test);
# each configuration runs in a fresh schema, dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 build=1 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --no-build) build=0 ;;
        --out) out="$2"; shift ;;
        *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done
tasks=${BENCH_CONCURRENT_TASKS:-1000}
clients=${BENCH_CLIENTS:-32}
worker_counts=${BENCH_WORKERS:-1 2 4}
if [ "$quick" = 1 ]; then tasks=${BENCH_CONCURRENT_TASKS:-150}; fi
url=${AMAS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}

if [ "$build" = 1 ]; then
    cargo build --release --locked --workspace --bins
fi
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work="$target_dir/bench-workers/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$work/bin"
echo "work dir: $work" >&2
for b in amas amas-mock-openai amas-bench-throughput; do cp "$target_dir/release/$b" "$work/bin/"; done
bin="$work/bin"

# The mock model, one reply per agent (sets `mock`).
# shellcheck source=bench/mock.sh
. bench/mock.sh

run() { # name, extra args...
    local name=$1; shift
    echo "== $name: $tasks tasks, $clients clients ==" >&2
    "$bin/amas-bench-throughput" --amas "$bin/amas" --mock "$mock" --work-dir "$work/$name" \
        --modes concurrent --concurrent-tasks "$tasks" --clients "$clients" "$@" >"$work/$name.json"
}
run sqlite
run postgres-1proc --database-url "$url"
for n in $worker_counts; do
    run "postgres-$n-workers" --database-url "$url" --workers "$n"
done

if [ -z "$out" ]; then
    out="bench/results/workers-$(date -u +%Y-%m-%d)-$(git rev-parse --short HEAD).json"
fi
mkdir -p "$(dirname "$out")"
python3 - "$work" "$out" "$tasks" "$clients" "$worker_counts" <<'PY'
import json, os, platform, sys
work, out, tasks, clients, counts = sys.argv[1:6]
names = ["sqlite", "postgres-1proc"] + [f"postgres-{n}-workers" for n in counts.split()]
runs = {n: json.load(open(os.path.join(work, n + ".json"))) for n in names}
base = runs["sqlite"]["concurrent_tps"]
print(f"{'configuration':<22} {'tasks/s':>9} {'vs sqlite':>10} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
for n in names:
    c = runs[n]["concurrent"]
    print(f"{n:<22} {c['tps']:>9.1f} {c['tps'] / base:>9.2f}x {c['p50_ms']:>8} {c['p99_ms']:>8} {c['failed']:>7}")
json.dump({"tasks": int(tasks), "clients": int(clients), "cpus": os.cpu_count(),
           "machine": platform.machine(), "runs": runs}, open(out, "w"), indent=2)
print(f"written: {out}")
PY
