#!/usr/bin/env bash
# Presence fan-out delay: INSTANCES release servers (more than one: instances of one cluster
# sharing a private Redis, the watchers spread round-robin over them, the actor on the first),
# WATCHERS idle connections (default 1000) and one user in General flipping its talking flag
# 200 times, 50 ms apart; for each flip, the delay until the first, the median and the last
# watcher read the presence update.
# EVENT=chat: the actor says a line in General instead (20 a second: the servers get a config
# lifting its chat rate), which every watcher follows; in cluster mode each line is numbered,
# added to the channel's history and published by one Redis script.
# Usage: [EVENT=presence|chat] bench/server-fanout.sh [WATCHERS] [INSTANCES]   (default 1000 1)
source "$(dirname "$0")/common.sh"
machine
event=${EVENT:-presence}
if [[ $event == chat ]]; then
  SERVER_CONFIG=$(mktemp)
  export SERVER_CONFIG
  { cat bench/server-load.toml; printf '\n[chat]\nmessages_per_second = 50\nburst = 100\n'; } >"$SERVER_CONFIG"
fi
start_servers "${2:-1}"
redis_mark
"$bin/loadgen" fanout --event "$event" --server "$servers" --watchers "${1:-1000}"
redis_report
if [[ $event == chat ]]; then rm -f "$SERVER_CONFIG"; fi
