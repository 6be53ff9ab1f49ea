#!/usr/bin/env bash
# Join-to-first-audio, two users on loopback: a tone bot sits in General; a listener joins N
# times and reports the `audio` event's `ms` (from sending `join` to the first decoded audio
# from the bot). With --relay, a coturn runs on free loopback ports, the server hands out its
# credentials (TURN_PROVIDER=coturn) and both clients use relay candidates only; the clients
# reach it over UDP (`--relay`, `--relay=udp`), TCP (`--relay=tcp`) or TLS (`--relay=tls`: a
# certificate for 127.0.0.1 made here, trusted through SSL_CERT_FILE).
# Usage: bench/join-to-audio.sh [--relay[=udp|tcp|tls]] [RUNS] (default 30).
source "$(dirname "$0")/common.sh"
relay=
case "${1:-}" in
  --relay | --relay=udp) relay=udp; shift ;;
  --relay=tcp) relay=tcp; shift ;;
  --relay=tls) relay=tls; shift ;;
esac
runs=${1:-30}
machine
port=$(free_port)
tmp=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ -f "$tmp/turn.pid" ] && kill "$(cat "$tmp/turn.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
policy=all
if [ -n "$relay" ]; then
  policy=relay
  # A listening port free for UDP and TCP, and 32 free UDP relay ports, below the ephemeral range.
  read -r turn_port relay_min tls_port < <(python3 - <<'PY'
import random, socket
def free(p, kind):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randrange(20000, 31000)
    r = random.randrange(20000, 31000)
    if free(p, socket.SOCK_STREAM) and free(p, socket.SOCK_DGRAM) and not r <= p < r + 32 \
            and all(free(q, socket.SOCK_DGRAM) for q in range(r, r + 32)):
        t = p + 1
        while not free(t, socket.SOCK_STREAM) or r <= t < r + 32:
            t += 1
        print(p, r, t); break
PY
  )
  secret=bench-$RANDOM$RANDOM
  tls=(--no-tls)
  if [ "$relay" = tls ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
      -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
      -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
    tls=(--tls-listening-port="$tls_port" --cert="$tmp/cert.pem" --pkey="$tmp/key.pem")
    export SSL_CERT_FILE=$tmp/cert.pem
  fi
  turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$turn_port" \
    --min-port="$relay_min" --max-port=$((relay_min + 31)) --use-auth-secret \
    --static-auth-secret="$secret" --realm=bench.local --fingerprint "${tls[@]}" --no-dtls --no-cli \
    --allow-loopback-peers --no-multicast-peers --pidfile="$tmp/turn.pid" \
    --userdb="$tmp/turndb" --log-file=stdout --simple-log >"$tmp/turn.log" 2>&1 &
  for _ in $(seq 50); do
    timeout 0.2 turnutils_stunclient -p "$turn_port" 127.0.0.1 2>/dev/null | grep -q 'UDP reflexive addr' && break
    sleep 0.1
  done
  case "$relay" in
    udp) url=turn:127.0.0.1:$turn_port ;;
    tcp) url="turn:127.0.0.1:$turn_port?transport=tcp" ;;
    tls) url="turns:127.0.0.1:$tls_port?transport=tcp" ;;
  esac
  export TURN_PROVIDER=coturn TURN_SECRET=$secret TURN_URLS=$url
fi
"$bin/cromulent" server --listen "127.0.0.1:$port" >/dev/null 2>&1 &
wait_port "$port"
"$bin/cromulent" headless --server "ws://127.0.0.1:$port" --user bot --join General \
  --audio-in tone:440 --ice-policy "$policy" >/dev/null 2>&1 &
sleep 1
printf 'join General\nwait audio bot 10\nquit\n' > "$tmp/script"
for i in $(seq "$runs"); do
  "$bin/cromulent" headless --server "ws://127.0.0.1:$port" --user "listener" \
    --ice-policy "$policy" --script "$tmp/script" > "$tmp/out" || true
  grep '"event":"audio"' "$tmp/out" | sed -E 's/.*"ms":([0-9]+).*/\1/' >> "$tmp/ms" || true
  # The path the call took (the peer event carries the local candidate type once connected).
  grep -o '"candidate":"[a-z]*"' "$tmp/out" | head -1 >> "$tmp/paths" || true
  sleep 0.2
done
[ -f "$tmp/ms" ] || { echo "no measurements"; exit 1; }
echo "# paths: $(sort "$tmp/paths" | uniq -c | tr -s ' ' | tr '\n' ' ')"
path=direct
[ -n "$relay" ] && path="relayed over $relay"
ms_summary "join → first audio $path" < "$tmp/ms"
