#!/usr/bin/env bash
# Max idle connections and server memory per connection: a release server, then
# `loadgen idle` opening CONNECTIONS (default 50000) WebSocket clients that say hello and stay,
# 5000 at a time over 8 loopback source addresses, reading the server's RSS after each step;
# then holding them all past the 20 s heartbeat timeout.
# Usage: bench/server-idle.sh [CONNECTIONS]
source "$(dirname "$0")/common.sh"
# One file descriptor per connection: as many as this machine lets us have.
ulimit -n 1000000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
machine
echo "# open-file limit here: $(ulimit -n)"
port=$(free_port)
RUST_LOG=warn "$bin/cromulent-server" --config bench/server-load.toml --listen "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait 2>/dev/null' EXIT
wait_port "$port"
"$bin/loadgen" idle --server "127.0.0.1:$port" --server-pid "$server" --connections "${1:-50000}"
