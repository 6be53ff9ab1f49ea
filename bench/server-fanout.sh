#!/usr/bin/env bash
# Presence fan-out delay: INSTANCES release servers (more than one: instances of one cluster
# sharing a private Redis, the watchers spread round-robin over them, the actor on the first),
# WATCHERS idle connections (default 1000) and one user in General flipping its talking flag
# 200 times, 50 ms apart; for each flip, the delay until the first, the median and the last
# watcher read the presence update.
# Usage: bench/server-fanout.sh [WATCHERS] [INSTANCES]   (default 1000 1)
source "$(dirname "$0")/common.sh"
machine
start_servers "${2:-1}"
redis_mark
"$bin/loadgen" fanout --server "$servers" --watchers "${1:-1000}"
redis_report
