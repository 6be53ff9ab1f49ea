#!/usr/bin/env bash
# Join → first audio on a network that blocks all UDP (issue 20): alice and bob behind routers
# that let out only TCP 443 (coturn's TLS) and signaling, carol on the public host, all three
# joining at once (tests/restrictive_network.rs,
# `udp_blocked_clients_talk_through_turn_over_tls_and_a_udp_peer_keeps_udp`, the one harness:
# real coturn, `turns:` relays, release build). Each run gives six joins (every caller hears
# each other); prints every run and the p50/p95 over all of them. Needs root (namespaces).
# Usage: bench/blocked-join.sh [RUNS] (default 5)
source "$(dirname "$0")/common.sh"
runs=${1:-5}
machine
cargo test --release --locked -q --test restrictive_network --no-run 2>/dev/null
for _ in $(seq "$runs"); do
  CROMULENT_REQUIRE_NETNS=1 cargo test --release --locked -q --test restrictive_network \
    udp_blocked_clients_talk_through_turn_over_tls -- --nocapture 2>&1 |
    grep -o 'JOIN_TO_AUDIO_MS.*' || echo "JOIN_TO_AUDIO_MS failed"
done | tee /dev/stderr | grep -v failed | tr -d '[],' | tr ' ' '\n' | grep -E '^[0-9]+$' |
  ms_summary "UDP-blocked network, join → first audio over turns: (6 per run)"
