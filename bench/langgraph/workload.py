"""LangGraph side of the AMAS throughput bench (bench/README.md, docs/performance.md).

The research -> analysis -> synthesis workflow of AMAS's task type `research_report` as a
3-node LangGraph StateGraph. Each node calls the mock's /v1/chat/completions over HTTP with
the agent's system prompt and its JSON input, and parses the JSON answer. The graph is
compiled with the SQLite checkpointer on a file and every run uses durability="sync", so each
checkpoint is committed (synchronous=FULL, as AMAS's default journal_sync) before the next
node runs.

Measures tasks/s one task at a time, and with N concurrent clients in two ways, both reported:
  * async:   one AsyncSqliteSaver (one aiosqlite connection) and N coroutines with one
             httpx.AsyncClient: the way LangGraph's own server runs graphs.
  * threads: N OS threads, each with its own sqlite3 connection, SqliteSaver and
             httpx.Client (the GIL is released during HTTP and SQLite I/O).
`concurrent_tps` is the better of the two, so the comparison favours LangGraph.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from importlib import metadata
from typing import Any, Optional, TypedDict

import aiosqlite
import httpx
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph

# The same prompts and required answer keys as the agents in config/agents.yaml.
AGENTS = {
    "research": (
        "You are a research assistant. Read the topic and list the most important facts "
        "about it, each as one short sentence, then summarise them in one or two sentences. "
        "Answer only with JSON.",
        ("findings", "summary"),
    ),
    "analysis": (
        "You are an analyst. From the research findings, state up to three insights and up to "
        "two risks, each as one short sentence. Answer only with JSON.",
        ("insights", "risks"),
    ),
    "synthesis": (
        "You are a writer. Combine the inputs into a short report with a title. Be factual and "
        "brief. Answer only with JSON.",
        ("title", "report"),
    ),
}


class State(TypedDict, total=False):
    topic: str
    description: str
    research: dict
    analysis: dict
    synthesis: dict


def request_body(agent: str, inputs: dict) -> dict:
    prompt, _ = AGENTS[agent]
    return {
        "model": agent,
        "messages": [
            {"role": "system", "content": prompt},
            {"role": "user", "content": json.dumps(inputs)},
        ],
        "max_tokens": 500,
        "temperature": 0,
    }


def parse_answer(agent: str, response: httpx.Response) -> dict:
    response.raise_for_status()
    content = response.json()["choices"][0]["message"]["content"]
    answer = json.loads(content)
    _, required = AGENTS[agent]
    missing = [k for k in required if k not in answer]
    if missing:
        raise ValueError(f"{agent}: answer lacks {missing}")
    return answer


def node_inputs(agent: str, state: State) -> dict:
    if agent == "research":
        return {"topic": state["topic"], "description": state.get("description")}
    if agent == "analysis":
        return {"topic": state["topic"], "research": state["research"]}
    return {
        "topic": state["topic"],
        "research": state["research"],
        "analysis": state["analysis"],
    }


def sync_graph(client: httpx.Client, saver: SqliteSaver, base_url: str):
    def make(agent: str):
        def node(state: State) -> dict:
            body = request_body(agent, node_inputs(agent, state))
            response = client.post(f"{base_url}/chat/completions", json=body)
            return {agent: parse_answer(agent, response)}

        return node

    return wire(make).compile(checkpointer=saver)


def async_graph(client: httpx.AsyncClient, saver: AsyncSqliteSaver, base_url: str):
    def make(agent: str):
        async def node(state: State) -> dict:
            body = request_body(agent, node_inputs(agent, state))
            response = await client.post(f"{base_url}/chat/completions", json=body)
            return {agent: parse_answer(agent, response)}

        return node

    return wire(make).compile(checkpointer=saver)


def wire(make) -> StateGraph:
    graph = StateGraph(State)
    for agent in AGENTS:
        graph.add_node(agent, make(agent))
    graph.add_edge(START, "research")
    graph.add_edge("research", "analysis")
    graph.add_edge("analysis", "synthesis")
    graph.add_edge("synthesis", END)
    return graph


def task_input(i: int) -> State:
    return {"topic": f"Topic {i}: tidal energy", "description": "A short overview."}


def run_config() -> dict:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def check_result(result: Any) -> None:
    if "title" not in result.get("synthesis", {}):
        raise RuntimeError(f"task ended without a synthesis: {result}")


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, timeout=60)
    # Explicit, so the comparison does not rest on SQLite's compile-time default; the saver
    # itself switches the file to WAL, as AMAS's store does.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def summary(latencies: list[float], wall: float) -> dict:
    latencies = sorted(latencies)
    return {
        "tasks": len(latencies),
        "seconds": round(wall, 3),
        "tps": round(len(latencies) / wall, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
    }


def sequential(base_url: str, db: str, tasks: int, warmup: int) -> dict:
    conn = connect(db)
    with httpx.Client(timeout=60) as client:
        saver = SqliteSaver(conn)
        graph = sync_graph(client, saver, base_url)
        for i in range(warmup):
            check_result(graph.invoke(task_input(i), run_config(), durability="sync"))
        latencies = []
        start = time.perf_counter()
        for i in range(tasks):
            t0 = time.perf_counter()
            check_result(graph.invoke(task_input(i), run_config(), durability="sync"))
            latencies.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
    synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
    journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    out = summary(latencies, wall)
    out["sqlite"] = {"synchronous": synchronous, "journal_mode": journal_mode}
    return out


def concurrent_threads(base_url: str, db: str, tasks: int, clients: int) -> dict:
    """`clients` threads, each with its own connection, saver, graph and HTTP client."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    next_task = iter(range(tasks))
    barrier = threading.Barrier(clients + 1)

    def worker() -> None:
        conn = connect(db)
        try:
            with httpx.Client(timeout=60) as client:
                graph = sync_graph(client, SqliteSaver(conn), base_url)
                # One untimed task each: connection set-up and first-call costs.
                check_result(graph.invoke(task_input(0), run_config(), durability="sync"))
                barrier.wait()
                while True:
                    with lock:
                        i = next(next_task, None)
                    if i is None:
                        return
                    t0 = time.perf_counter()
                    check_result(graph.invoke(task_input(i), run_config(), durability="sync"))
                    took = time.perf_counter() - t0
                    with lock:
                        latencies.append(took)
        except BaseException as e:  # noqa: BLE001 - reported below, the run fails
            errors.append(e)
            barrier.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} worker(s) failed: {errors[0]!r}")
    return summary(latencies, wall)


async def concurrent_async(base_url: str, db: str, tasks: int, clients: int) -> dict:
    """`clients` coroutines sharing one AsyncSqliteSaver and one AsyncClient."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with aiosqlite.connect(db) as conn, httpx.AsyncClient(
        timeout=60, limits=limits
    ) as client:
        await conn.execute("PRAGMA synchronous=FULL")
        graph = async_graph(client, AsyncSqliteSaver(conn), base_url)
        latencies: list[float] = []
        next_task = iter(range(tasks))

        async def one(i: int) -> float:
            t0 = time.perf_counter()
            check_result(await graph.ainvoke(task_input(i), run_config(), durability="sync"))
            return time.perf_counter() - t0

        await asyncio.gather(*(one(i) for i in range(clients)))  # warm-up, untimed

        async def worker() -> None:
            for i in next_task:
                latencies.append(await one(i))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    return summary(latencies, wall)


def versions() -> dict:
    return {
        name: metadata.version(name)
        for name in ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite", "httpx")
    } | {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True, help="the mock, up to and including /v1")
    p.add_argument("--dir", required=True, help="where the checkpoint databases go")
    p.add_argument("--sequential-tasks", type=int, default=300)
    p.add_argument("--concurrent-tasks", type=int, default=1500)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument(
        "--modes", default="sequential,async,threads", help="comma-separated subset to run"
    )
    args = p.parse_args(argv)
    modes = set(args.modes.split(","))
    os.makedirs(args.dir, exist_ok=True)
    db = lambda name: os.path.join(args.dir, f"{name}.sqlite")  # noqa: E731

    out: dict[str, Any] = {"versions": versions(), "clients": args.clients}
    if "sequential" in modes:
        out["sequential"] = sequential(args.base_url, db("sequential"), args.sequential_tasks, args.warmup)
        print(f"langgraph sequential: {out['sequential']}", file=sys.stderr)
    if "async" in modes:
        out["concurrent_async"] = asyncio.run(
            concurrent_async(args.base_url, db("async"), args.concurrent_tasks, args.clients)
        )
        print(f"langgraph concurrent (async): {out['concurrent_async']}", file=sys.stderr)
    if "threads" in modes:
        out["concurrent_threads"] = concurrent_threads(
            args.base_url, db("threads"), args.concurrent_tasks, args.clients
        )
        print(f"langgraph concurrent (threads): {out['concurrent_threads']}", file=sys.stderr)
    out["sequential_tps"] = out.get("sequential", {}).get("tps")
    best = max(
        (out[k] for k in ("concurrent_async", "concurrent_threads") if k in out),
        key=lambda s: s["tps"],
        default=None,
    )
    out["concurrent_tps"] = best["tps"] if best else None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
