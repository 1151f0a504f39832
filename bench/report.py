"""Reports of the throughput bench (scripts/bench-throughput.sh, docs/performance.md).

  report.py profile WORK TASKS
      Condenses WORK's perf and strace reports (TASKS: tasks of the strace run) into the JSON
      object stored as the run's "profile".
  report.py combine WORK OUT SEQUENTIAL_TASKS CONCURRENT_TASKS CLIENTS
      Joins WORK's amas.json, langgraph.json and profile.json with the machine's facts into OUT
      and prints the table.

Standard library only: it runs on the system Python, outside the LangGraph venv.
"""

import json
import os
import platform
import re
import subprocess
import sys
import time

# Syscalls reported per task: durability (fsync), hand-offs between threads (futex, and
# clock_nanosleep: SQLite's busy-wait sleeps), file locks (fcntl) and page I/O.
PER_TASK = [
    "fsync", "fdatasync", "futex", "clock_nanosleep", "fcntl",
    "pwrite64", "pread64", "write", "writev", "epoll_wait",
]


def perf_rows(path):
    """(percent, key columns) of a `perf report --stdio -g none` listing."""
    out = []
    for line in open(path):
        if line.lstrip().startswith("#"):
            continue
        m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
        if m:
            out.append((float(m.group(1)), " ".join(m.group(2).split())))
    return out


def strace_counts(path):
    """Syscall -> calls of a `strace -c` summary."""
    calls = {}
    for line in open(path):
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    return calls


def profile(work, tasks):
    dso = perf_rows(os.path.join(work, "perf-dso.txt"))
    kernel = sum(p for p, d in dso if d.startswith("[kernel"))
    out = {
        "perf_event": "cpu-clock, -g, 1999 Hz, timed concurrent phase only",
        "kernel_pct": round(kernel, 1),
        "user_pct": round(sum(p for p, _ in dso) - kernel, 1),
        "by_dso": [{"pct": p, "dso": d} for p, d in dso[:8]],
        "by_thread": [{"pct": p, "comm": c} for p, c in perf_rows(os.path.join(work, "perf-comm.txt"))[:8]],
        "by_thread_dso": [{"pct": p, "comm_dso": c} for p, c in perf_rows(os.path.join(work, "perf-comm-dso.txt"))[:10]],
        "top_symbols": [{"pct": p, "sym": s} for p, s in perf_rows(os.path.join(work, "perf-sym.txt"))[:15]],
    }
    strace = os.path.join(work, "strace.txt")
    if os.path.exists(strace):
        calls = strace_counts(strace)
        out["strace"] = {
            "tasks": tasks,
            "note": "strace -c -f over the timed phase; the server runs many times slower under strace, so only counts mean anything",
            "per_task": {n: round(calls.get(n, 0) / tasks, 1) for n in PER_TASK},
            "syscalls_per_task": round(sum(calls.values()) / tasks, 1),
            "top": sorted(({"syscall": k, "calls": v} for k, v in calls.items()), key=lambda r: -r["calls"])[:12],
        }
    print(json.dumps(out))


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine(work):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
    mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "filesystem": sh("sh", "-c", f"df -T '{work}' | tail -1 | awk '{{print $2}}'"),
        "rustc": sh("rustc", "--version"),
    }


def combine(work, out, seq_tasks, conc_tasks, clients):
    load = lambda name: json.load(open(os.path.join(work, name)))  # noqa: E731
    amas, lg, prof = load("amas.json"), load("langgraph.json"), load("profile.json")
    ratio = lambda a, b: round(a / b, 2) if a and b else None  # noqa: E731
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": sh("git", "rev-parse", "HEAD"),
        "machine": machine(work),
        "workload": {
            "task_type": "research_report (research -> analysis -> synthesis)",
            "model": "amas-mock-openai --no-record over loopback HTTP, instant, one contract-valid reply per agent",
            "sequential_tasks": seq_tasks,
            "concurrent_tasks": conc_tasks,
            "clients": clients,
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
    if prof:
        result["profile"] = prof
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print_table(result, clients, out)


def print_table(result, clients, out):
    amas, lg, r = result["amas"], result["langgraph"], result["ratios"]
    f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
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
    prof = result.get("profile")
    if prof:
        print(f"profile of amas serve, concurrent: kernel {prof['kernel_pct']}%, user {prof['user_pct']}%")
        for t in prof["by_thread_dso"][:6]:
            print(f"  {t['pct']:5.1f}%  {t['comm_dso']}")
        if "strace" in prof:
            s = prof["strace"]
            counts = ", ".join(f"{v} {k}" for k, v in s["per_task"].items() if v)
            print(f"  syscalls per task ({s['tasks']} tasks under strace): {counts}; {s['syscalls_per_task']} in all")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "profile":
        profile(args[0], int(args[1]))
    elif cmd == "combine":
        combine(args[0], args[1], *map(int, args[2:5]))
    else:
        sys.exit(__doc__)
