#!/usr/bin/env bash
# Mouth-to-ear latency of the headless path: two engines in one process, 10 sessions × 25
# clicks (250 events), direct, or with --relay through a coturn on free loopback ports
# (relay candidates only). Prints p50/p95 and the breakdown.
# Usage: bench/mouth-to-ear.sh [--relay]
source "$(dirname "$0")/common.sh"
machine
"$bin/latency-probe" "$@"
