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
    cargo build --release --locked -p amas-cli -p amas-test-util --bins
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

mock_pid=""
cleanup() { if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

# The mock: one reply per agent, each valid under that agent's output contract.
"$bin/amas-mock-openai" --port 0 --no-record >"$work/mock.out" &
mock_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' "$work/mock.out" 2>/dev/null && break; sleep 0.1; done
mock=$(sed -n 's/^listening on //p' "$work/mock.out")
[ -n "$mock" ] || { echo "the mock did not start" >&2; exit 1; }
reply() {
    curl -fsS -X POST "${mock%/v1}/_control/behaviour" -H 'content-type: application/json' \
        -d "{\"model\": \"$1\", \"default\": {\"reply\": $2}}"
}
reply research '{"findings": ["Tides are predictable.", "Turbines sit on the seabed."], "summary": "Tidal energy is predictable but costly to build."}'
reply analysis '{"insights": ["Predictability eases grid planning."], "risks": ["High capital cost."]}'
reply synthesis '{"title": "Tidal energy in brief", "report": "Tidal power is predictable and clean, but its plants cost much to build."}'
reply local '{"note": "unused by the bench"}'

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
    perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null >"$work/perf-dso.txt"
    perf report -i "$work/perf.data" --no-children --sort comm --stdio 2>/dev/null >"$work/perf-comm.txt"
    perf report -i "$work/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null >"$work/perf-sym.txt"
    strace_tasks=$((conc_tasks < 500 ? conc_tasks : 500))
    if command -v strace >/dev/null; then
        echo "== profile: strace -c -f of amas serve, concurrent ($strace_tasks tasks) ==" >&2
        "$bin/amas-bench-throughput" --amas "$bin/amas" --mock "$mock" --work-dir "$work/strace" \
            --modes concurrent --concurrent-tasks "$strace_tasks" --clients "$clients" \
            --profile-cmd "strace -c -f -o $work/strace.txt -p {pid}" >"$work/strace-run.json"
    fi
    python3 - "$work" "$strace_tasks" >"$work/profile.json" <<'EOF'
"""Condenses the perf and strace reports into the JSON's "profile" object."""
import json, os, re, sys

work, strace_tasks = sys.argv[1], int(sys.argv[2])

def rows(name):
    out = []
    for line in open(os.path.join(work, name)):
        m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
        if m and not line.lstrip().startswith("#"):
            out.append((float(m.group(1)), m.group(2)))
    return out

dso = rows("perf-dso.txt")
kernel = sum(p for p, d in dso if d.startswith("[kernel"))
profile = {
    "perf_event": "cpu-clock, -g, 1999 Hz, timed concurrent phase only",
    "kernel_pct": round(kernel, 1),
    "user_pct": round(sum(p for p, _ in dso) - kernel, 1),
    "by_dso": [{"pct": p, "dso": d} for p, d in dso[:8]],
    "by_thread": [{"pct": p, "comm": c} for p, c in rows("perf-comm.txt")[:8]],
    "top_symbols": [{"pct": p, "sym": s} for p, s in rows("perf-sym.txt")[:15]],
}
strace = os.path.join(work, "strace.txt")
if os.path.exists(strace):
    calls = {}
    for line in open(strace):
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    per_task = lambda *names: round(sum(calls.get(n, 0) for n in names) / strace_tasks, 1)
    profile["strace"] = {
        "tasks": strace_tasks,
        "fsync_per_task": per_task("fsync", "fdatasync"),
        "futex_per_task": per_task("futex"),
        "pwrite_per_task": per_task("pwrite64", "pwritev", "write", "writev"),
        "syscalls_per_task": round(sum(calls.values()) / strace_tasks, 1),
        "top": sorted(({"syscall": k, "calls": v} for k, v in calls.items()),
                      key=lambda r: -r["calls"])[:12],
    }
print(json.dumps(profile))
EOF
fi

if [ -z "$out" ]; then
    out="bench/results/$(date -u +%Y-%m-%d)-$(git rev-parse --short HEAD).json"
fi
mkdir -p "$(dirname "$out")"
python3 - "$work" "$out" "$seq_tasks" "$conc_tasks" "$clients" <<'EOF'
"""Joins both sides and the machine facts into one JSON file, and prints the table."""
import json, os, platform, subprocess, sys, time

work, out, seq_tasks, conc_tasks, clients = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
load = lambda name: json.load(open(os.path.join(work, name)))
amas, lg, profile = load("amas.json"), load("langgraph.json"), load("profile.json")

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return None

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
ratio = lambda a, b: round(a / b, 2) if a and b else None
result = {
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": sh("git", "rev-parse", "HEAD"),
    "machine": {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(), "load_avg_at_end": os.getloadavg(),
        "filesystem": sh("sh", "-c", f"df -T {work} | tail -1 | awk '{{print $2}}'"),
        "rustc": sh("rustc", "--version"),
    },
    "workload": {
        "task_type": "research_report (research -> analysis -> synthesis)",
        "model": "amas-mock-openai over loopback HTTP, instant, one contract-valid reply per agent",
        "sequential_tasks": seq_tasks, "concurrent_tasks": conc_tasks, "clients": clients,
        "durability": "AMAS journal_sync=full (SQLite WAL, synchronous=FULL); LangGraph SqliteSaver WAL, synchronous=FULL, durability='sync'",
        "amas_wait": "SSE stream of the task's events, ended by the server at the terminal event",
        "langgraph_concurrent": "best of asyncio+AsyncSqliteSaver and threads with a connection each",
    },
    "amas": amas,
    "langgraph": lg,
    "ratios": {
        "sequential": ratio(amas.get("sequential_tps"), lg.get("sequential_tps")),
        "concurrent": ratio(amas.get("concurrent_tps"), lg.get("concurrent_tps")),
    },
    "targets": {"sequential": 3.0, "concurrent": 10.0},
}
if profile:
    result["profile"] = profile
json.dump(result, open(out, "w"), indent=2)
open(out, "a").write("\n")

f = lambda v: "-" if v is None else f"{v:.1f}"
r = result["ratios"]
print()
print(f"{'mode':<28} {'AMAS tasks/s':>13} {'LangGraph tasks/s':>18} {'ratio':>7} {'target':>7}")
print(f"{'one task at a time':<28} {f(amas.get('sequential_tps')):>13} {f(lg.get('sequential_tps')):>18} {f(r['sequential']) + 'x':>7} {'3x':>7}")
print(f"{f'{clients} concurrent clients':<28} {f(amas.get('concurrent_tps')):>13} {f(lg.get('concurrent_tps')):>18} {f(r['concurrent']) + 'x':>7} {'10x':>7}")
for side, d in (("AMAS", amas), ("LangGraph", lg)):
    for mode in ("sequential", "concurrent", "concurrent_async", "concurrent_threads"):
        if mode in d:
            m = d[mode]
            print(f"  {side} {mode}: {m['tasks']} tasks in {m['seconds']} s, p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms")
if "audit_records" in amas:
    print(f"  AMAS audit: {amas['audit_records']} records for {amas['tasks_submitted']} tasks, chain intact: {amas['audit_intact']}")
if profile:
    print(f"profile of amas serve (concurrent): kernel {profile['kernel_pct']}%, user {profile['user_pct']}%")
    for t in profile["by_thread"][:5]:
        print(f"  {t['pct']:5.1f}%  {t['comm']}")
    if "strace" in profile:
        s = profile["strace"]
        print(f"  per task: {s['fsync_per_task']} fsync, {s['futex_per_task']} futex, {s['pwrite_per_task']} writes, {s['syscalls_per_task']} syscalls in all")
print(f"\nresults: {out}")
EOF
