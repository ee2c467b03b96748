#!/usr/bin/env bash
# System tools `make bench` drives: nginx (the canned fast upstream) and wrk (the load generator),
# from Debian's packages. The benchmark starts its own nginx; the system service is kept off.
set -euo pipefail
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  need+=(nginx)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "error: the benchmark needs ${need[*]}; install them (Debian: apt-get install nginx-light wrk)" >&2
  exit 1
fi
apt-get update -qq >/dev/null
packages=()
for tool in "${need[@]}"; do
  if [ "$tool" = nginx ]; then
    # nginx-light is the small build (newer Debian folds it into plain nginx).
    if apt-cache show nginx-light >/dev/null 2>&1; then packages+=(nginx-light); else packages+=(nginx); fi
  else
    packages+=("$tool")
  fi
done
echo "installing ${packages[*]} for the benchmark" >&2
# policy-rc.d exit 101 tells the package scripts not to start the system nginx service.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
