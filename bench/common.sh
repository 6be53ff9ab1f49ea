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

# A private redis-server (no persistence) on a free port, for cluster mode; sets redis_port.
# Stopped by the EXIT trap of start_servers (or the caller's, which must kill "${started[@]}").
start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  redis_pid=$!
  started+=("$redis_pid")
  wait_port "$redis_port"
}

# With cluster mode: redis_mark before a load, redis_report after it prints what Redis spent
# meanwhile: its CPU (percent of one core, over connecting, warm-up and the measured window
# alike) and, per command since it started, calls and microseconds per call.
redis_ticks() { awk '{print $14 + $15}' "/proc/$redis_pid/stat"; }
redis_mark() {
  [[ -n ${redis_pid:-} ]] || return 0
  redis_ticks0=$(redis_ticks) redis_time0=$(date +%s.%N)
}
redis_report() {
  [[ -n ${redis_pid:-} ]] || return 0
  awk -v t0="$redis_ticks0" -v t1="$(redis_ticks)" -v s0="$redis_time0" -v s1="$(date +%s.%N)" \
    -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "redis: CPU %.0f %% of one core over %.1f s\n", 100 * (t1 - t0) / hz / (s1 - s0), s1 - s0 }'
  redis-cli -p "$redis_port" info commandstats | tr -d '\r' |
    grep -E '^cmdstat_(evalsha|eval|publish|set|sadd|getdel|del):' |
    sed -E 's/^cmdstat_([a-z]+):calls=([0-9]+),usec=[0-9]+,usec_per_call=([0-9.]+).*/redis: \1 calls \2, \3 us per call/'
}

# Release server number $1 with bench/server-load.toml on a free port, in cluster mode (its
# instance id bench$1) when start_redis ran; sets instance_port and instance_pid. SERVER_BIN
# names another server binary (another build, for a comparison), SERVER_CONFIG another config.
start_instance() {
  instance_port=$(free_port)
  local env=(RUST_LOG=warn)
  if [[ -n ${redis_port:-} ]]; then
    env+=(CROMULENT_REDIS_URL="redis://127.0.0.1:$redis_port/" CROMULENT_INSTANCE_ID="bench$1")
  fi
  env "${env[@]}" "${SERVER_BIN:-$bin/cromulent-server}" --config "${SERVER_CONFIG:-bench/server-load.toml}" \
    --listen "127.0.0.1:$instance_port" >/dev/null 2>&1 &
  instance_pid=$!
  started+=("$instance_pid")
  wait_port "$instance_port"
  # An instance takes its lease in Redis as it starts; give it that moment before any join.
  if [[ -n ${redis_port:-} ]]; then sleep 1; fi
}

# $1 (default 1) release servers; more than one are instances of one cluster sharing a private
# Redis. Sets servers and server_pids (comma-separated, for loadgen); stops them all on EXIT.
start_servers() {
  started=() servers="" server_pids=""
  trap 'kill "${started[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
  if (( ${1:-1} > 1 )); then start_redis; fi
  for i in $(seq "${1:-1}"); do
    start_instance "$i"
    servers+="${servers:+,}127.0.0.1:$instance_port"
    server_pids+="${server_pids:+,}$instance_pid"
  done
}

# Reads one number (milliseconds) per line; prints "LABEL: runs N  min … p50 … p95 … max …".
ms_summary() {
  sort -n | awk -v label="$1" '{a[NR]=$1} END {
    if (NR == 0) { print label ": no measurements"; exit 1 }
    printf "%s: runs %d  min %d ms  p50 %d ms  p95 %d ms  max %d ms\n", label, NR, a[1], a[int((NR+1)/2)], a[int(NR*0.95+0.5)], a[NR]
  }'
}
