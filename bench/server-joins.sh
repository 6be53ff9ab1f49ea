#!/usr/bin/env bash
# Joins per second and join-reply latency: a release server, WATCHERS connections that only
# listen and JOINERS connections running join/leave cycles at RATE joins per second in total
# for 10 s (after 2 s of warm-up). Every join and leave is a presence message to every
# connection, so the number of connections belongs beside the rate.
# Usage: bench/server-joins.sh [RATE] [WATCHERS] [JOINERS]   (default 2000 100 100)
source "$(dirname "$0")/common.sh"
machine
port=$(free_port)
RUST_LOG=warn "$bin/cromulent-server" --config bench/server-load.toml --listen "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait 2>/dev/null' EXIT
wait_port "$port"
"$bin/loadgen" joins --server "127.0.0.1:$port" --server-pid "$server" \
  --rate "${1:-2000}" --watchers "${2:-100}" --joiners "${3:-100}"
