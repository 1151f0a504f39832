# Sourced by the bench scripts (scripts/bench-throughput.sh, scripts/bench-workers.sh) after
# they set `bin` (the copied release binaries) and `work` (the run's directory): starts the
# mock model (`amas-mock-openai`) on a free loopback port, stops it on exit, and gives each
# agent of the research report one reply valid under its output contract. Sets `mock` (the
# mock's base URL, up to and including /v1).

mock_pid=""
cleanup() { if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

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
