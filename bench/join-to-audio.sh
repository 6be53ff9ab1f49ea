#!/usr/bin/env bash
# Join-to-first-audio, two users on loopback: a tone bot sits in General; a listener joins N
# times and reports the `audio` event's `ms` (from sending `join` to the first decoded audio
# from the bot). Usage: bench/join-to-audio.sh [RUNS] (default 30). Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
bin=${CARGO_TARGET_DIR:-target}/release/cromulent
[ -x "$bin" ] || cargo build --release --locked -q
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tmp=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$bin" server --listen "127.0.0.1:$port" >/dev/null 2>&1 &
sleep 0.5
"$bin" headless --server "ws://127.0.0.1:$port" --user bot --join General --audio-in tone:440 >/dev/null 2>&1 &
sleep 1
printf 'join General\nwait audio bot 10\nquit\n' > "$tmp/script"
for i in $(seq "$runs"); do
  "$bin" headless --server "ws://127.0.0.1:$port" --user "listener" --script "$tmp/script" \
    | grep '"event":"audio"' | sed -E 's/.*"ms":([0-9]+).*/\1/' >> "$tmp/ms"
  sleep 0.2
done
sort -n "$tmp/ms" | awk '{a[NR]=$1} END {
  if (NR == 0) { print "no measurements"; exit 1 }
  printf "runs %d  min %d ms  p50 %d ms  p95 %d ms  max %d ms\n", NR, a[1], a[int((NR+1)/2)], a[int(NR*0.95+0.5)], a[NR]
}'
