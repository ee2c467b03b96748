#!/usr/bin/env bash
# System tools the test suite drives for real: Prometheus and promtool (Debian's package).
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's prometheus package (promtool, prometheus) for the metrics tests" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a system service we do not want competing for port 9090.
  (service prometheus stop || pkill -x prometheus || true) >/dev/null 2>&1
else
  echo "warning: promtool/prometheus missing and cannot be installed here (not root or no apt-get)" >&2
fi
