#!/usr/bin/env bash
# Presence fan-out delay: a release server, WATCHERS idle connections (default 1000) and one
# user in General flipping its talking flag 200 times, 50 ms apart; for each flip, the delay
# until the first, the median and the last watcher read the presence update.
# Usage: bench/server-fanout.sh [WATCHERS]
source "$(dirname "$0")/common.sh"
machine
port=$(free_port)
RUST_LOG=warn "$bin/cromulent-server" --config bench/server-load.toml --listen "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait 2>/dev/null' EXIT
wait_port "$port"
"$bin/loadgen" fanout --server "127.0.0.1:$port" --watchers "${1:-1000}"
