#!/usr/bin/env bash
# Installs the observability tools the SLO tests run for real: promtool (Debian package
# `prometheus`) and amtool (Debian package `prometheus-alertmanager`). Idempotent and quiet when
# both are already there, so scripts/test.sh can call it on every run (apt-get update runs only
# when something is missing). Only the command-line tools are used; the packages' systemd units
# are irrelevant to the tests.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if [[ ${#need[@]} -eq 0 ]]; then
    exit 0
fi

as_root=()
if [[ "$(id -u)" != "0" ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-observability-tools: need root or sudo to install: ${need[*]}" >&2
        exit 1
    fi
    as_root=(sudo)
fi

echo "install-observability-tools: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || {
    echo "install-observability-tools: promtool/amtool still missing after install" >&2
    exit 1
}
