#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need on a Debian 12 machine:
# Debian packages (only when something is missing) and the Python virtualenv .venv.
# Usage: tools/deps.sh [--no-docker]
set -euo pipefail
cd "$(dirname "$0")/.."

want_docker=1
[ "${1:-}" = "--no-docker" ] && want_docker=0

need_pkgs=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_pkgs+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need_pkgs+=(mariadb-client)
command -v pigz >/dev/null 2>&1 || need_pkgs+=(pigz)
command -v mydumper >/dev/null 2>&1 || need_pkgs+=(mydumper)
command -v zstd >/dev/null 2>&1 || need_pkgs+=(zstd)
# ansible-test sanity runs its shellcheck test only when the program is installed.
command -v shellcheck >/dev/null 2>&1 || need_pkgs+=(shellcheck)
# The fleet health report's page is checked in a real browser (tests/functional/test_health_report.py).
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
if [ "$want_docker" = 1 ]; then
  command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "deps: installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package scripts must not start a system MariaDB: the tests run their own servers.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$(command -v "$cand"); break; fi
  done
fi
stamp=.venv/.deps-$(sha256sum requirements-dev.txt | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "deps: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  touch "$stamp"
fi
