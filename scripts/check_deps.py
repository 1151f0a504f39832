#!/usr/bin/env python3
"""Dependency-direction check for the AMAS workspace (run by scripts/check-deps.sh from .ci/run).

Owns the crate staircase: every internal dependency must point to a strictly lower tier,

    types -> config -> telemetry -> {store, policy, providers, tools, dataprotect}
          -> governance -> runtime -> api -> cli
    sqlite-sandbox (tier 0) -> tools

and `amas-test-util` may only be a dev-dependency. It also fails on declared-but-unused
internal dependencies (the crate's name never appears in the sources that can use it) and on
normal dependencies used only by tests or benches (they belong in [dev-dependencies]).
Reads `cargo metadata` (or a saved copy via --metadata, which the fixture tests use).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys

# Lower number = lower in the staircase; a crate may depend only on strictly lower tiers.
TIERS = {
    "amas-types": 0,
    # The SQLite FFI guard of `sql_query` (the workspace's only unsafe code): no internal deps.
    "amas-sqlite-sandbox": 0,
    "amas-config": 1,
    "amas-telemetry": 2,
    "amas-store": 3,
    "amas-policy": 3,
    "amas-providers": 3,
    "amas-tools": 3,
    "amas-dataprotect": 3,
    "amas-governance": 4,
    "amas-runtime": 5,
    "amas-api": 6,
    "amas-cli": 7,
}
# Test support sits above everything it helps test, and nothing may ship with it.
DEV_ONLY = {"amas-test-util": 8}

# Where a dependency of each kind may be used.
NORMAL_DIRS = ("src", "build.rs")
DEV_DIRS = ("src", "tests", "benches", "examples")


def tier(name: str) -> int | None:
    return TIERS.get(name, DEV_ONLY.get(name))


def mentions(root: pathlib.Path, places: tuple[str, ...], crate: str) -> bool:
    """Whether `crate` (as a Rust path, `amas_x`) appears in any .rs file under `places`."""
    ident = re.compile(r"\b" + re.escape(crate.replace("-", "_")) + r"\b")
    for place in places:
        path = root / place
        files = [path] if path.is_file() else sorted(path.rglob("*.rs")) if path.is_dir() else []
        for f in files:
            if ident.search(f.read_text(encoding="utf-8", errors="replace")):
                return True
    return False


def check(metadata: dict) -> list[str]:
    """Every violation, one line each; empty when the graph keeps the staircase."""
    problems: list[str] = []
    members = set(metadata["workspace_members"])
    for package in metadata["packages"]:
        if package["id"] not in members:
            continue
        name = package["name"]
        own = tier(name)
        if own is None:
            problems.append(f"{name}: not in the staircase; add it to TIERS in {__file__}")
            continue
        root = pathlib.Path(package["manifest_path"]).parent
        for dep in package["dependencies"]:
            target = dep["name"]
            theirs = tier(target)
            if theirs is None:
                continue  # not an internal crate
            kind = dep.get("kind") or "normal"
            edge = f"{name} -> {target} ({kind})"
            if target in DEV_ONLY and kind != "dev":
                problems.append(f"{edge}: {target} is test support; only a dev-dependency")
            elif theirs >= own and not (kind == "dev" and target in DEV_ONLY):
                where = "same tier (sideways)" if theirs == own else "higher tier (upward)"
                problems.append(f"{edge}: {where}; the staircase allows only lower tiers")
            if kind == "dev":
                if not mentions(root, DEV_DIRS, target):
                    problems.append(f"{edge}: declared but unused; remove it")
            elif not mentions(root, NORMAL_DIRS, target):
                if mentions(root, DEV_DIRS, target):
                    problems.append(f"{edge}: used only by tests or benches; move it to [dev-dependencies]")
                else:
                    problems.append(f"{edge}: declared but unused; remove it")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata", help="a saved `cargo metadata` JSON instead of running cargo")
    args = parser.parse_args()
    if args.metadata:
        metadata = json.loads(pathlib.Path(args.metadata).read_text(encoding="utf-8"))
    else:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        )
        metadata = json.loads(out.stdout)
    problems = check(metadata)
    for p in problems:
        print(f"check-deps: {p}", file=sys.stderr)
    if problems:
        print(f"check-deps: {len(problems)} violation(s) of the crate staircase", file=sys.stderr)
        return 1
    print("check-deps: the crate graph keeps the staircase")
    return 0


if __name__ == "__main__":
    sys.exit(main())
