#!/usr/bin/env bash
# Mouth-to-ear latency and audio continuity under network jitter and loss (issue 7): the
# latency probe's two engines, relay-only through a coturn on free loopback ports, with each
# engine's upload going through a user-space UDP relay that delays every datagram by
# 20 ms ± 10 ms (uniform, so packets may reorder) and drops 5 % of them — one-way
# `delay 20ms 10ms loss 5%` per direction.
#
# This replaces `tc qdisc … netem` between network namespaces: this machine's kernel is built
# without netem (CONFIG_NET_SCH_NETEM is not set; `tc` answers "Specified qdisc kind is
# unknown") and no module can be loaded. The relay (bench/src/impair.rs) only touches loopback.
#
# Runs, each 10 sessions × 20 clicks 13 frames (260 ms) apart: {loss 5 %, loss 0, no
# impairment (control through the same relay)} × {continuous stream, clicks after silence}.
# A click counts only if heard within its period, so the period is longer than the
# default 160 ms (delays here reach ~150 ms; a lost onset must not take the next click's).
# Prints the figures of each; a run that fails is retried once.
# Usage: bench/jitter-path.sh [extra latency-probe options, e.g. --sessions 3]
source "$(dirname "$0")/common.sh"
machine
# One probe run: impairment $1, then extra options.
probe() {
  local impair=$1
  shift
  timeout 600 "$bin/latency-probe" --impair "$impair" --period-frames 13 --clicks 20 "$@"
}
for impair in 20,10,5 20,10,0 0,0,0; do
  for stream in --continuous ""; do
    echo
    echo "## --impair $impair ${stream:-(clicks after silence)}"
    # shellcheck disable=SC2086 # $stream is one option or none
    probe "$impair" $stream "$@" || { echo "run failed; once more" >&2; probe "$impair" $stream "$@"; } ||
      echo "FAILED: --impair $impair $stream"
  done
done
