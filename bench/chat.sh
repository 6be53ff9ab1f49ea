#!/usr/bin/env bash
# Text chat under load (issue 18), three figures, each from a release server of its own:
#  1. fan-out: WATCHERS connections follow General (`watch`); one user says 200 lines, 50 ms
#     apart; per line, the delay until the first, the median and the last watcher read it;
#  2. history: a history file seeded with MESSAGES lines in General (the server's own store),
#     the server started on it, 1,000 pages of 50 asked for at random points, one at a time
#     (45 a second: under the per-connection rate limit);
#  3. joins while chat is busy: `loadgen joins` (2,000 joins/s, 100 watchers, 100 joiners)
#     alone, then again while 100 more clients chat at their rate limit (chat.messages_per_second,
#     2 lines/s each by default; CHAT_RATE to change) with the history in a file, then the same
#     with the history in memory: whether the disk writes reach the signaling path (file against
#     memory) apart from the chat traffic itself.
# Usage: bench/chat.sh [WATCHERS] [MESSAGES]   (default 1000 1000000)
source "$(dirname "$0")/common.sh"
machine
watchers=${1:-1000}
messages=${2:-1000000}
tmp=$(mktemp -d)
server=
stop() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; server=; }
trap 'stop; rm -rf "$tmp"' EXIT
# The fan-out figure's one speaker says 20 lines a second: over the default chat rate (2/s),
# so that server gets a config that lifts it; the others run with the default.
cp bench/server-load.toml "$tmp/fanout.toml"
printf '\n[chat]\nmessages_per_second = 50\nburst = 100\n' >> "$tmp/fanout.toml"
start() { # start DB [CONFIG]: a server on a free port with that chat database
  port=$(free_port)
  CROMULENT_CHAT_DB=$1 RUST_LOG=warn "$bin/cromulent-server" --config "${2:-bench/server-load.toml}" \
    --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  server=$!
  wait_port "$port"
}

echo "# 1. chat fan-out to $watchers watchers"
start "$tmp/fanout.sqlite3" "$tmp/fanout.toml"
"$bin/loadgen" fanout --event chat --server "127.0.0.1:$port" --watchers "$watchers"
stop

echo "# 2. history pages from a channel of $messages messages"
"$bin/loadgen" chat-seed --db "$tmp/big.sqlite3" --messages "$messages"
start "$tmp/big.sqlite3"
"$bin/loadgen" history --server "127.0.0.1:$port" --newest "$messages"
stop

echo "# 3a. joins alone"
start "$tmp/joins.sqlite3"
"$bin/loadgen" joins --server "127.0.0.1:$port" --server-pid "$server"
stop
# The chatters are 100 more connections, and every connection gets every presence change
# (2,000 joins/s: 400,000 more frames/s): the baseline for chat is them connected and silent.
echo "# 3a'. joins with the same 100 clients connected, silent"
start "$tmp/silent.sqlite3"
"$bin/loadgen" chatters --server "127.0.0.1:$port" --clients 100 --rate 0 --duration 14 &
chat=$!
sleep 1
"$bin/loadgen" joins --server "127.0.0.1:$port" --server-pid "$server"
wait "$chat"
stop
chat_rate=${CHAT_RATE:-2}
for db in "$tmp/busy.sqlite3" ":memory:"; do
  echo "# 3b. joins while 100 clients chat at $chat_rate lines/s each, history in $db"
  start "$db"
  "$bin/loadgen" chatters --server "127.0.0.1:$port" --clients 100 --rate "$chat_rate" --duration 14 &
  chat=$!
  sleep 1
  "$bin/loadgen" joins --server "127.0.0.1:$port" --server-pid "$server"
  wait "$chat"
  stop
done
