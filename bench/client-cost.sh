#!/usr/bin/env bash
# Client cost: for calls of 2, 4 and 8 users (real `cromulent headless` processes, everyone
# playing a tone, push-to-talk), CPU and RSS of one client and its bandwidth per peer while
# everyone talks, while only it talks, and while nobody does (PTT released).
# As root it runs in a private network namespace (loopback then carries only this benchmark,
# so wire bytes per peer can be counted) and counts libopus encode/decode calls of the observed
# client with uprobes (perf probe), when the kernel allows.
# Usage: bench/client-cost.sh [USERS [CLIENT-COST OPTIONS…]]   (default 2,4,8)
source "$(dirname "$0")/common.sh"
machine
users=${1:-2,4,8}
shift || true
cost="$bin/client-cost --users $users --binary $bin/cromulent $*"
if [ "$(id -u)" != 0 ] || ! unshare -mn true 2>/dev/null; then
  echo "# not root or no namespaces: shared loopback, no wire figures, no codec call counts"
  exec $cost
fi
libopus=$(ldd "$bin/cromulent" | awk '/libopus/ {print $3}')
exec unshare -mn bash -c '
  set -euo pipefail
  ip link set lo up
  probes=""
  if [ -n "$1" ] && mount -t tracefs none /sys/kernel/tracing 2>/dev/null &&
     perf probe -q -x "$1" --add opus_encode_float --add opus_decode_float 2>/dev/null; then
    probes=--perf-probes
    trap "perf probe -q -d \"probe_libopus:*\" 2>/dev/null || true" EXIT
  else
    echo "# uprobes unavailable: no codec call counts"
  fi
  $2 $probes --private-loopback
' bash "$libopus" "$cost"
