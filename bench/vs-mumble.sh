#!/usr/bin/env bash
# Mouth-to-ear side by side with Mumble 1.3.4 (Debian `mumble` + `mumble-server`), the reference
# low-latency voice client, through the same PulseAudio virtual devices, alternating runs in one
# invocation. Each round runs five configurations, ours and Mumble's in turn:
#   ours-20ms       our two headless clients, 20 ms frames (the default): bench/device-path.sh
#   mumble-default  Mumble at its defaults: 20 ms/packet, jitter buffer 1, output delay 5
#   ours-10ms       bench/device-path.sh with FRAME_MS=10
#   mumble-lowest   Mumble at its lowest-latency settings: 10 ms/packet, jitter buffer 1, output
#                   delay 1, noise suppression off
#   ours-5ms        bench/device-path.sh with FRAME_MS=5, the low-delay mode (issue 22)
# Both Mumble configurations transmit continuously (MUMBLE_TRANSMIT=vad: voice activation
# instead, amplitude threshold, 50 ms hold, one talk spurt per burst). Continuously, Mumble's
# receiver keeps the jitter-buffer depth it settled on when the stream started (5-10 ms apart
# from run to run); with one talk spurt per burst it starts afresh each time, Mumble's best case.
# The rig is bench/pulse.sh's private PulseAudio daemon plus a FIFO-fed microphone `mic`, read
# back from the null sink `spk`'s monitor, with bursts timed to their onsets on one monotonic
# clock by bench/device_path.py; a fresh daemon per run. For Mumble: murmurd on a free loopback
# port (its own ini, certificate and database, bandwidth raised so 10 ms packets keep the
# default quality), two clients under a private Xvfb, each with its own HOME/XDG dirs and a
# Mumble.conf, a certificate .p12 in ~/Documents (no certificate wizard), lastupdate=2 (no audio
# wizard) and the server's certificate digest pre-stored in mumble.sqlite (no verification
# dialog). The sender records `mic` and plays into a null sink nobody hears; the receiver plays
# into `spk` and records the silent monitor of another null sink, in push-to-talk so it never
# sends (unlike our receiver it keeps its capture running, as in any Mumble call).
# Prints each run (p50/p95 mouth-to-ear, bursts heard, CPU % of a core of the sender and the
# receiver process over the measured window, their RSS), then the medians per configuration and
# the ratio ours / Mumble's lowest latency. A Mumble run whose clients do not open their
# PulseAudio streams (Mumble 1.3.4 sometimes never does) or whose receiver hears nothing is
# retried once, then reported as failed; every wait is bounded.
# Installs mumble, mumble-server, xvfb and openssl with apt-get when missing (root), and
# pulseaudio, pulseaudio-utils, libasound2-plugins through bench/pulse.sh.
# Usage: bench/vs-mumble.sh [ROUNDS] [SECONDS]   (defaults 5 rounds of 20 s per run;
#        BIN_DIR=DIR to use prebuilt binaries; MUMBLE_TRANSMIT=continuous|vad;
#        PROCESSING=none|LIST for our sender's capture processing, default all, as on any microphone)
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
rounds=${1:-5}
seconds=${2:-20}
transmit=${MUMBLE_TRANSMIT:-continuous}
case $transmit in continuous | vad) ;; *) echo "MUMBLE_TRANSMIT: continuous or vad" >&2; exit 2 ;; esac
if [ -n "${BIN_DIR:-}" ]; then
  bin=$BIN_DIR
else
  bin=${CARGO_TARGET_DIR:-target}/release
  cargo build --release --locked -q -p cromulent -p cromulent-server
fi
bin=$(cd "$bin" && pwd)
# free_port, wait_port and machine, without common.sh's build of every bench tool.
eval "$(sed -n '/^free_port()/,$p' bench/common.sh)"
source bench/pulse.sh

need=()
command -v mumble >/dev/null || need+=(mumble)
command -v murmurd >/dev/null || [ -x /usr/sbin/murmurd ] || need+=(mumble-server)
command -v Xvfb >/dev/null || need+=(xvfb)
command -v openssl >/dev/null || need+=(openssl)
python3 -c 'import sqlite3' 2>/dev/null || command -v sqlite3 >/dev/null || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
  echo "# installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
murmurd=$(command -v murmurd || echo /usr/sbin/murmurd)

machine
echo "# $rounds rounds of $seconds s per run; Mumble $(dpkg-query -W -f '${Version}' mumble 2>/dev/null || echo '?'), murmurd $(dpkg-query -W -f '${Version}' mumble-server 2>/dev/null || echo '?'), Mumble transmits: $transmit; our sender's capture processing: ${PROCESSING:-all}"
work=$(mktemp -d /tmp/vs-mumble.XXXXXX)

# The processes below PID, recursively (what this script started; not the asking subshell).
descendants() {
  local c
  for c in $(pgrep -P "$1" || true); do
    [ "$c" = "$BASHPID" ] && continue
    echo "$c"
    descendants "$c"
  done
}
cleanup() {
  local all p q d
  trap - EXIT INT TERM
  all=$(descendants $$)
  # The runs first: device-path.sh and each Mumble run stop what they started on TERM.
  for p in $(pgrep -P $$ || true); do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    p=0
    for q in $all; do kill -0 "$q" 2>/dev/null && p=1; done
    [ $p = 0 ] && break
    sleep 0.1
  done
  for q in $all; do kill -9 "$q" 2>/dev/null || true; done
  # The sound servers daemonize (no longer our children): each run's, by its runtime dir.
  for d in "$work"/*/*/pulse; do
    if [ -d "$d" ]; then PULSE_DIR=$d pulse_stop; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Certificates, once: murmurd's (its SHA-1 goes into each client's database) and one per client.
mkdir "$work/certs"
cert() { # NAME: NAME.key + NAME.crt, self-signed RSA (what Mumble's certificates are)
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=$1" \
    -keyout "$work/certs/$1.key" -out "$work/certs/$1.crt" 2>/dev/null
}
cert murmurd
server_sha1=$(openssl x509 -in "$work/certs/murmurd.crt" -noout -fingerprint -sha1 | cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
for user in mic ear; do
  cert "$user"
  # Unencrypted, no MAC: Mumble imports it with an empty password.
  openssl pkcs12 -export -passout pass: -keypbe NONE -certpbe NONE -nomac \
    -inkey "$work/certs/$user.key" -in "$work/certs/$user.crt" -out "$work/certs/$user.p12"
done

# The server's certificate digest for 127.0.0.1:PORT in a client's mumble.sqlite (the table as
# src/mumble/Database.cpp creates it).
store_digest() { # DB PORT
  local sql="CREATE TABLE IF NOT EXISTS cert (id INTEGER PRIMARY KEY AUTOINCREMENT, hostname TEXT, port INTEGER, digest TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS cert_host_port ON cert(hostname, port);
INSERT INTO cert (hostname, port, digest) VALUES ('127.0.0.1', $2, '$server_sha1');"
  if python3 -c 'import sqlite3' 2>/dev/null; then
    python3 -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.executescript(sys.argv[2]); db.commit()' "$1" "$sql"
  else
    sqlite3 "$1" "$sql"
  fi
}

# Does process PID have a stream on DEVICE? KIND: source (a recording) or sink (a playback).
stream_on() { # KIND PID DEVICE
  local idx list
  idx=$(pactl list short "$1s" | awk -v n="$3" '$2 == n {print $1}')
  [ -n "$idx" ] || return 1
  if [ "$1" = source ]; then list=source-outputs; else list=sink-inputs; fi
  pactl list "$list" | awk -v idx="$idx" -v pid="\"$2\"" '
    /^(Source Output|Sink Input) #/ {dev = ""}
    /^\t(Source|Sink): / {dev = $2}
    /application\.process\.id = / {if ($3 == pid && dev == idx) found = 1}
    END {exit !found}'
}

# CPU ticks (user + system) of a whole process.
proc_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
hz=$(getconf CLK_TCK)

# One Mumble run, in a subshell of its own: DIR FRAMES_PER_PACKET OUTPUT_DELAY NOISE_SUPPRESS.
# Writes DIR/run (the figures) or DIR/failed (why), and stops everything it started.
mumble_attempt() {
  # Not local: the EXIT trap reads them after this function has returned.
  dir=$1 m_pids=()
  local fpp=$2 delay=$3 noise=$4
  local display port writer user home tx rx ready
  mkdir -p "$dir"
  # shellcheck disable=SC2317  # called by the trap
  attempt_cleanup() {
    local p alive
    for p in "${m_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 30); do
      alive=0
      for p in "${m_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    for p in "${m_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    pulse_stop
  }
  trap attempt_cleanup EXIT
  fail() { echo "$*" >"$dir/failed"; exit 1; }

  pulse_start "$dir/pulse"
  pactl load-module module-pipe-source source_name=mic file="$dir/mic.fifo" \
    format=float32le rate=48000 channels=1 >/dev/null
  pactl set-default-source mic
  # The sender's speaker (it hears nobody) and the receiver's microphone (silence).
  pactl load-module module-null-sink sink_name=void >/dev/null
  pactl load-module module-null-sink sink_name=quiet >/dev/null
  # Silence until $dir/go, then the bursts; bounded even if nobody ever reads the microphone.
  timeout $((seconds + 120)) python3 bench/device_path.py "$dir/mic.fifo" "$seconds" "$dir/go" >"$dir/result.json" &
  writer=$!
  m_pids+=("$writer")

  Xvfb -displayfd 3 -nolisten tcp -screen 0 1024x768x24 3>"$dir/display" >"$dir/xvfb.log" 2>&1 &
  m_pids+=($!)
  for _ in $(seq 100); do [ -s "$dir/display" ] && break; sleep 0.1; done
  [ -s "$dir/display" ] || fail "Xvfb did not start"
  display=$(head -1 "$dir/display")

  port=$(free_port)
  cat >"$dir/murmur.ini" <<EOF
host=127.0.0.1
port=$port
database=$dir/murmur.sqlite
logfile=
pidfile=
ice=
dbus=
bonjour=false
uname=$(id -un)
sslCert=$work/certs/murmurd.crt
sslKey=$work/certs/murmurd.key
bandwidth=558000
users=10
autobanAttempts=0
kdfiterations=1000
allowping=false
welcometext=
EOF
  "$murmurd" -ini "$dir/murmur.ini" -fg >"$dir/murmur.log" 2>&1 &
  m_pids+=($!)
  wait_port "$port" 2>/dev/null || fail "murmurd did not listen"

  # Settings keys and defaults: src/mumble/Settings.cpp (1.3.4). transmit: 0 continuous, 1 voice
  # activation, 2 push-to-talk; noisesupress 0 is "Off"; framesperpacket counts 10 ms frames.
  for user in ear mic; do
    home=$dir/$user
    mkdir -p "$home/.config/Mumble" "$home/.local/share/Mumble/Mumble" "$home/Documents"
    cp "$work/certs/$user.p12" "$home/Documents/MumbleAutomaticCertificateBackup.p12"
    store_digest "$home/.local/share/Mumble/Mumble/mumble.sqlite" "$port"
    local tx_mode=2 input=quiet.monitor output=spk
    if [ $user = mic ]; then
      input=mic output=void
      if [ "$transmit" = vad ]; then tx_mode=1; else tx_mode=0; fi
    fi
    cat >"$home/.config/Mumble/Mumble.conf" <<EOF
[General]
lastupdate=2

[audio]
input=PulseAudio
output=PulseAudio
transmit=$tx_mode
vadsource=0
vadmin=0.5
vadmax=0.6
voicehold=5
outputdelay=$delay
noisesupress=$noise

[net]
framesperpacket=$fpp
jitterbuffer=1

[pulseaudio]
input=$input
output=$output

[tts]
enable=false

[ui]
updatecheck=false
plugincheck=false
usage=false
askonquit=false
EOF
    env -i PATH="$PATH" LANG=C.UTF-8 HOME="$home" XDG_CONFIG_HOME="$home/.config" \
      XDG_DATA_HOME="$home/.local/share" XDG_CACHE_HOME="$home/.cache" \
      XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" DISPLAY=":$display" PULSE_SOURCE="$input" \
      PULSE_SINK="$output" JACK_NO_START_SERVER=1 \
      mumble --multiple "mumble://$user@127.0.0.1:$port/" >"$dir/$user.log" 2>&1 &
    m_pids+=($!)
    if [ $user = mic ]; then tx=$!; else rx=$!; fi
  done

  both_alive() { kill -0 "$tx" 2>/dev/null && kill -0 "$rx" 2>/dev/null; }
  # Ready: both authenticated, the sender recording `mic`, the receiver playing into `spk`.
  ready=0
  local ready_timeout=30 deadline
  deadline=$((SECONDS + ready_timeout))
  while [ $SECONDS -lt $deadline ]; do
    if grep -q ':mic(-1)> Authenticated' "$dir/murmur.log" && grep -q ':ear(-1)> Authenticated' "$dir/murmur.log" &&
       stream_on source "$tx" mic && stream_on sink "$rx" spk; then
      ready=1
      break
    fi
    both_alive || break
    sleep 0.1
  done
  if [ $ready = 0 ]; then
    local why=()
    grep -q ':mic(-1)> Authenticated' "$dir/murmur.log" || why+=("sender not connected")
    grep -q ':ear(-1)> Authenticated' "$dir/murmur.log" || why+=("receiver not connected")
    stream_on source "$tx" mic || why+=("sender's recording stream never opened")
    stream_on sink "$rx" spk || why+=("receiver's playback stream never opened")
    kill -0 "$tx" 2>/dev/null || why+=("sender exited")
    kill -0 "$rx" 2>/dev/null || why+=("receiver exited")
    fail "not ready within $ready_timeout s: $(IFS=,; echo "${why[*]}")"
  fi
  # Voice starts over the TCP tunnel until the UDP ping succeeds: let it settle.
  sleep 2

  local p0 r0 t0 t1 p1 r1 rss_tx rss_rx
  p0=$(proc_ticks "$tx"); r0=$(proc_ticks "$rx")
  t0=$(date +%s.%N)
  touch "$dir/go"
  wait "$writer" || fail "the microphone writer failed or timed out"
  t1=$(date +%s.%N)
  both_alive || fail "a Mumble client exited during the run"
  p1=$(proc_ticks "$tx"); r1=$(proc_ticks "$rx")
  rss_tx=$(awk '/VmRSS/{print $2}' /proc/"$tx"/status)
  rss_rx=$(awk '/VmRSS/{print $2}' /proc/"$rx"/status)
  python3 - "$dir" "$t0" "$t1" "$hz" "$p0" "$p1" "$r0" "$r1" "$rss_tx" "$rss_rx" <<'EOF'
import json, sys
d = sys.argv[1]
t0, t1, hz, p0, p1, r0, r1, rss_tx, rss_rx = map(float, sys.argv[2:])
r = json.load(open(f"{d}/result.json"))
if not r["heard"]:
    open(f"{d}/failed", "w").write(f"receiver heard none of {r['sent']} bursts\n")
    sys.exit(1)
span = t1 - t0
cpu = lambda a, b: (b - a) / hz / span * 100
with open(f"{d}/run", "w") as f:
    print(r["p50_ms"], r["p95_ms"], r["heard"], r["sent"], f"{cpu(p0, p1):.1f}", f"{cpu(r0, r1):.1f}",
          round(rss_tx / 1024), round(rss_rx / 1024), file=f)
EOF
}

# One of ours: bench/device-path.sh itself, its figures picked from what it prints.
ours_run() { # DIR FRAME_MS
  local dir=$1 out
  mkdir -p "$dir"
  # FRAME_MS unset for the client's own default (20 ms). In the background, so that this
  # script's traps fire at once (TERM reaches device-path.sh through timeout: it cleans up).
  # PROCESSING (our sender's capture processing) is passed on: unset, device-path.sh's
  # default, all stages, as on any microphone.
  env -u DEVICE -u PULSE_TRANSPORT -u FRAME_MS BIN_DIR="$bin" ${2:+FRAME_MS="$2"} \
    timeout $((seconds + 180)) bash bench/device-path.sh "$seconds" >"$dir/out" 2>"$dir/err" &
  if ! wait $!; then
    echo "device-path.sh failed: $(tail -1 "$dir/err")" >"$dir/failed"
    return 1
  fi
  out=$dir/out
  local n p rs rr
  n=$(sed -n 's/^mouth-to-ear over .*: n=\([0-9]*\) of \([0-9]*\) bursts.* p50 \([0-9.]*\) ms, p95 \([0-9.]*\) ms.*/\3 \4 \1 \2/p' "$out")
  p=$(sed -n 's/^sender .*: CPU \([0-9.]*\)% .*RSS \([0-9]*\) MiB$/\1 \2/p' "$out")
  rs=${p#* }; p=${p% *}
  rr=$(sed -n 's/^receiver (.*: CPU \([0-9.]*\)% .*RSS \([0-9]*\) MiB$/\1 \2/p' "$out")
  if [ -z "$n" ] || [ -z "$p" ] || [ -z "$rr" ]; then
    echo "could not read device-path.sh's output" >"$dir/failed"
    return 1
  fi
  echo "$n $p ${rr% *} $rs ${rr#* }" >"$dir/run"
}

configs=(ours-20ms mumble-default ours-10ms mumble-lowest ours-5ms)
: >"$work/results"
for round in $(seq "$rounds"); do
  for config in "${configs[@]}"; do
    dir=$work/$config-r$round
    mkdir -p "$dir"
    ok=0
    case $config in
      ours-20ms) if ours_run "$dir" ""; then ok=1; fi ;;
      ours-10ms) if ours_run "$dir" 10; then ok=1; fi ;;
      ours-5ms) if ours_run "$dir" 5; then ok=1; fi ;;
      mumble-*)
        # framesperpacket, outputdelay, noisesupress
        if [ "$config" = mumble-default ]; then settings=(2 5 -30); else settings=(1 1 0); fi
        for attempt in 1 2; do
          # In the background, so that this script's traps still fire while it runs.
          (mumble_attempt "$dir/attempt$attempt" "${settings[@]}") &
          if wait $! && [ -s "$dir/attempt$attempt/run" ]; then
            cp "$dir/attempt$attempt/run" "$dir/run"
            ok=1
            break
          fi
          cat "$dir/attempt$attempt/failed" >"$dir/failed" 2>/dev/null ||
            echo "the run stopped on an error (its logs: $dir/attempt$attempt)" >"$dir/failed"
          if [ $attempt = 1 ]; then echo "# $config round $round: $(cat "$dir/failed"); retrying once"; fi
        done
        ;;
    esac
    if [ $ok = 1 ]; then
      read -r p50 p95 heard sent ctx crx mtx mrx <"$dir/run"
      printf '%-15s round %d/%d: p50 %6.1f ms, p95 %6.1f ms, n=%s/%s, CPU send %4.1f%% recv %4.1f%%, RSS send %3d MiB recv %3d MiB\n' \
        "$config" "$round" "$rounds" "$p50" "$p95" "$heard" "$sent" "$ctx" "$crx" "$mtx" "$mrx"
      echo "$config $p50 $p95 $heard $sent $ctx $crx $mtx $mrx" >>"$work/results"
    else
      printf '%-15s round %d/%d: FAILED: %s\n' "$config" "$round" "$rounds" "$(cat "$dir/failed")"
    fi
  done
done

python3 - "$work/results" "${configs[@]}" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
labels = {
    "ours-20ms": "ours, 20 ms frames",
    "mumble-default": "Mumble defaults (20 ms/packet, jitter 1, output delay 5)",
    "ours-10ms": "ours, 10 ms frames",
    "mumble-lowest": "Mumble lowest latency (10 ms/packet, jitter 1, delay 1, NS off)",
    "ours-5ms": "ours, 5 ms frames (low-delay mode)",
}
med = {}
print(f"# medians per configuration (of the runs that completed)")
print(f"{'configuration':<66} runs  p50 ms  p95 ms  CPU send/recv %  RSS send/recv MiB")
for c in sys.argv[2:]:
    rs = [list(map(float, r[1:])) for r in rows if r[0] == c]
    if not rs:
        print(f"{labels[c]:<66}    0")
        continue
    m = [statistics.median(col) for col in zip(*rs)]
    med[c] = m
    print(f"{labels[c]:<66} {len(rs):>4}  {m[0]:6.1f}  {m[1]:6.1f}  {m[4]:6.1f} / {m[5]:4.1f}  {m[6]:7.0f} / {m[7]:3.0f}")
ref = med.get("mumble-lowest")
for c in ("ours-20ms", "ours-10ms", "ours-5ms"):
    if ref and c in med:
        print(f"ours / Mumble lowest latency, {labels[c][6:]}: p50 {med[c][0] / ref[0]:.2f}, p95 {med[c][1] / ref[1]:.2f}")
    else:
        print(f"ours / Mumble lowest latency, {labels[c][6:]}: no runs to compare")
EOF
