#!/usr/bin/env bash
# Join → first audio between the web client in a real Chromium and `cromulent headless`, on
# loopback, both offer roles, both directions (see bench/src/bin/web-join.rs for what is timed).
# Runs in a private network namespace with only loopback (root or unprivileged user namespaces
# needed): the browser gathers candidates on every interface it sees, and nothing may leave.
# Also prints the page's weight (every embedded file, uncompressed).
# Usage: bench/web-join.sh [RUNS] (default 20).
source "$(dirname "$0")/common.sh"
runs=${1:-20}
machine
weight=$(find server/web -type f -print0 | xargs -0 cat | wc -c)
echo "page weight: $weight bytes uncompressed ($(find server/web -type f | wc -l) files)"
map=()
[ "$(id -u)" = 0 ] || map=(--map-root-user)
exec unshare "${map[@]}" --net --pid --fork --mount-proc -- sh -c \
  'ip link set lo up && exec "$0" --runs "$1" --binary "$2"' \
  "$bin/web-join" "$runs" "$bin/cromulent"
