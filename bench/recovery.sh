#!/usr/bin/env bash
# Recovery after a total outage (issue 20): a direct call between two headless clients in
# network namespaces (tests/restrictive_network.rs, `after_an_outage_audio_returns_both_ways`,
# the one harness), all UDP through one router dropped for 5–30 s, then restored; each run
# prints how long after the network returned each side received audio again (packets counted
# by `stats` every 50 ms). RUNS runs with outages spread evenly over 5–30 s; prints every run
# and the worst case. Needs root (network namespaces).
# Usage: bench/recovery.sh [RUNS] (default 10)
source "$(dirname "$0")/common.sh"
runs=${1:-10}
machine
cargo test --release --locked -q --test restrictive_network --no-run 2>/dev/null
for i in $(seq "$runs"); do
  outage=$(( 5 + (i - 1) * 25 / (runs > 1 ? runs - 1 : 1) ))
  CROMULENT_OUTAGE_S=$outage CROMULENT_REQUIRE_NETNS=1 cargo test --release --locked -q \
    --test restrictive_network after_an_outage_audio_returns_both_ways -- --nocapture 2>&1 |
    grep -o 'RECOVERY.*' || echo "RECOVERY outage_s=$outage failed"
done | tee /dev/stderr | awk '
  /failed|=-1/ { failed++; next }
  { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (v["offerer_hears_ms"] > wo) wo = v["offerer_hears_ms"]
    if (v["answerer_hears_ms"] > wa) wa = v["answerer_hears_ms"]
    n++ }
  END { printf "recovery after 5–30 s outages: runs %d (failed %d)  worst: offerer hears after %d ms, answerer after %d ms\n", n, failed, wo, wa }'
