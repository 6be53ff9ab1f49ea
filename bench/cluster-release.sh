#!/usr/bin/env bash
# Cluster mode: how long the seat of a `kill -9`ed instance stays taken. A private Redis, a
# surviving instance and, per run, a fresh doomed one (default leases: lease_ms 15000,
# renew_ms 5000, so the documented bound is 20 s); a user sits through the doomed instance, a
# watcher on the survivor; SIGKILL, then the real time until the watcher reads the leave.
# Usage: bench/cluster-release.sh [RUNS]   (default 5)
source "$(dirname "$0")/common.sh"
machine
started=()
trap 'kill "${started[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
start_redis
start_instance 1
survivor=$instance_port
for i in $(seq "${1:-5}"); do
  start_instance "doomed$i"
  "$bin/loadgen" release --survivor "127.0.0.1:$survivor" --doomed "127.0.0.1:$instance_port" \
    --doomed-pid "$instance_pid" || kill "$instance_pid" 2>/dev/null
  wait "$instance_pid" 2>/dev/null || true
done | tee /dev/stderr | grep -o 'after [0-9.]* s' | awk '{print $2 * 1000}' |
  ms_summary "seat of a killed instance released"
