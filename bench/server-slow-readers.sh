#!/usr/bin/env bash
# Clients that stop reading, under a signal flood (issue 16): a release server on its default
# limits (1 MiB outbound queue, 10 s write deadline), READERS clients (default 20) that join
# General with a 4 KiB receive buffer and then read nothing, 4 flooders sending them 60 KB
# offers at the rate limit, and a watcher timing each reader's leave. Prints the server's RSS
# baseline, peak (against READERS x the queue budget) and 2 s after the drops.
# Usage: bench/server-slow-readers.sh [READERS]
source "$(dirname "$0")/common.sh"
machine
port=$(free_port)
RUST_LOG=warn "$bin/cromulent-server" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait 2>/dev/null' EXIT
wait_port "$port"
"$bin/loadgen" slow --server "127.0.0.1:$port" --server-pid "$server" --readers "${1:-20}"
