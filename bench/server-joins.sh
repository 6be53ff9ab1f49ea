#!/usr/bin/env bash
# Joins per second and join-reply latency: INSTANCES release servers (more than one: instances
# of one cluster sharing a private Redis, the connections spread round-robin over them),
# WATCHERS connections that only listen and JOINERS connections running join/leave cycles at
# RATE joins per second in total for 10 s (after 2 s of warm-up). Every join and leave is a
# presence message to every connection, so the number of connections belongs beside the rate.
# Usage: bench/server-joins.sh [RATE] [WATCHERS] [JOINERS] [INSTANCES]   (default 2000 100 100 1)
source "$(dirname "$0")/common.sh"
machine
start_servers "${4:-1}"
redis_mark
"$bin/loadgen" joins --server "$servers" --server-pid "$server_pids" \
  --rate "${1:-2000}" --watchers "${2:-100}" --joiners "${3:-100}"
redis_report
