#!/usr/bin/env bash
# System tools and clients the test suite drives for real:
# - Prometheus and promtool (Debian's package);
# - Chromium (Debian's package), which the console's browser tests drive through Playwright
#   (never a browser Playwright downloads itself);
# - the agent CLIs from npm (Claude Code, Codex CLI), pinned in tests/clients/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! { command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; }; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's prometheus package (promtool, prometheus) for the metrics tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package starts a system service we do not want competing for port 9090.
    (service prometheus stop || pkill -x prometheus || true) >/dev/null 2>&1
  else
    echo "warning: promtool/prometheus missing and cannot be installed here (not root or no apt-get)" >&2
  fi
fi

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium package for the console's browser tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "warning: chromium missing and cannot be installed here (not root or no apt-get): the console tests will fail" >&2
  fi
fi

clients=tests/clients
if [ ! -x "$clients/node_modules/.bin/claude" ] || [ ! -x "$clients/node_modules/.bin/codex" ] \
    || [ "$clients/package-lock.json" -nt "$clients/node_modules/.package-lock.json" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing the agent CLIs the end-to-end tests drive (npm ci in $clients)" >&2
    npm ci --prefix "$clients" --no-audit --no-fund --loglevel=error >/dev/null
  else
    echo "warning: npm missing: the Claude Code and Codex CLI tests will fail" >&2
  fi
fi
