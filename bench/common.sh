# Sourced by the bench/*.sh scripts: release build of everything they run, a free port, and
# one line describing the machine (what BENCHMARKS.md wants beside every figure).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${CARGO_TARGET_DIR:-target}/release
cargo build --release --locked -q -p cromulent -p cromulent-server -p cromulent-bench
# The servers benchmarks start keep chat history in memory (a benchmark of the history itself
# names its own file).
export CROMULENT_CHAT_DB=${CROMULENT_CHAT_DB:-:memory:}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

machine() {
  echo "# $(date -u '+%F %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Wait until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on port $1" >&2
  return 1
}

# Reads one number (milliseconds) per line; prints "LABEL: runs N  min … p50 … p95 … max …".
ms_summary() {
  sort -n | awk -v label="$1" '{a[NR]=$1} END {
    if (NR == 0) { print label ": no measurements"; exit 1 }
    printf "%s: runs %d  min %d ms  p50 %d ms  p95 %d ms  max %d ms\n", label, NR, a[1], a[int((NR+1)/2)], a[int(NR*0.95+0.5)], a[NR]
  }'
}
