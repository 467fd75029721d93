#!/usr/bin/env bash
# Installs the system packages Rapport's tests need when they are missing: PostgreSQL server binaries
# (the tests start a throwaway cluster themselves), Debian's chromium (driven by Playwright) and wrk (the
# HTTP load generator of the benchmarks and their smoke test).
# Only root can install; anyone else is told what to install.
set -euo pipefail

need=()
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ! -x /usr/bin/chromium ]; then
  need+=(chromium)
fi
if ! command -v wrk >/dev/null 2>&1; then
  need+=(wrk)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${need[*]}. Install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "Installing ${need[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
