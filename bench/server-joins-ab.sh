#!/usr/bin/env bash
# Join latency of another cromulent-server build against this one, alternating pair by pair
# (same offered load as server-joins.sh: 2,000 joins/s, 100 watchers + 100 joiners).
# Usage: bench/server-joins-ab.sh OTHER_SERVER_BINARY [PAIRS]
# e.g. git worktree add /tmp/base 4d629fe && (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base-target
#      cargo build --release -p cromulent-server) && bench/server-joins-ab.sh
#      /tmp/base-target/release/cromulent-server 6
source "$(dirname "$0")/common.sh"
other=${1:?usage: bench/server-joins-ab.sh OTHER_SERVER_BINARY [PAIRS]}
machine
one() { # LABEL SERVER_COMMAND...
  local label=$1 port pid
  shift
  port=$(free_port)
  RUST_LOG=warn "$@" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  wait_port "$port"
  echo "$label $("$bin/loadgen" joins --server "127.0.0.1:$port" --server-pid "$pid" |
    grep -o 'achieved.*max [0-9.]* ms')"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}
for _ in $(seq "${2:-3}"); do
  # The other build may predate the per-address budgets (and refuse their config keys).
  one other "$other"
  one this "$bin/cromulent-server" --config bench/server-load.toml
done
