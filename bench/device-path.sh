#!/usr/bin/env bash
# Mouth-to-ear through real audio devices, without a sound card: a private PulseAudio user
# daemon with a FIFO-fed microphone (module-pipe-source, float32le 48 kHz mono, the default
# source) and a null-sink speaker (the default sink) read back with parec from spk.monitor.
# Two `cromulent headless` clients on loopback through a local server: the sender captures
# the microphone (--audio-in device), the receiver plays to the speaker (--audio-out device),
# both on the daemon directly (DEVICE=alsa:default: through ALSA's pulse plugin, our ALSA
# capture thread and cpal's playback thread). Bursts written
# into the FIFO are timed to their onsets in the monitor on one monotonic clock
# (bench/device_path.py). Prints p50/p95 mouth-to-ear, CPU per process and per thread over the
# measured window, RSS, the sender's capture processing's own CPU time in the call (the
# engine's thread CPU clock around its calls into the chain), and the receiver's concealed
# frames and the devices' underruns.
# Installs pulseaudio, pulseaudio-utils and libasound2-plugins with apt-get when missing (root).
# Usage: bench/device-path.sh [SECONDS]   (default 30; BIN_DIR=DIR to use prebuilt binaries;
#        FRAME_MS=10 for 10 ms frames on both clients; DEVICE=NAME for --audio-in/out device:NAME;
#        PROCESSING=none|LIST for the sender's capture processing, default all as on any microphone;
#        PULSE_TRANSPORT=tcp: the clients reach the daemon over TCP on loopback through
#        PULSE_SERVER, as a client on a remote host reaches a sound server forwarded over SSH
#        with `ssh -R` — docs/TUI.md#sound-over-ssh)
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN_DIR=DIR measures binaries built elsewhere (e.g. an older commit, for before/after).
if [ -n "${BIN_DIR:-}" ]; then
  bin=$BIN_DIR
else
  bin=${CARGO_TARGET_DIR:-target}/release
  # Only the client and the server: this benchmark needs nothing from cromulent-bench.
  cargo build --release --locked -q -p cromulent -p cromulent-server
fi
# free_port, wait_port and machine, without common.sh's build of every bench tool.
eval "$(sed -n '/^free_port()/,$p' bench/common.sh)"
seconds=${1:-30}

source bench/pulse.sh

machine
echo "# frames: ${FRAME_MS:-20} ms, devices: ${DEVICE:-default}, sound server over: ${PULSE_TRANSPORT:-unix}, sender's processing: ${PROCESSING:-all}"
work=$(mktemp -d /tmp/device-path.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pulse_stop
  rm -rf "$work"
}
trap cleanup EXIT
# Everything below (daemon, clients, parec) finds the private daemon through its environment.
pulse_start "$work"
# The module makes the FIFO itself.
pactl load-module module-pipe-source source_name=mic file="$work/mic.fifo" \
  format=float32le rate=48000 channels=1 >/dev/null
pactl set-default-source mic
if [ "${PULSE_TRANSPORT:-unix}" = tcp ]; then
  # The clients only (pactl and parec keep the socket): a TCP listener on loopback, the way
  # `ssh -R` presents the forwarded server on the remote host.
  pulse_port=$(free_port)
  pactl load-module module-native-protocol-tcp listen=127.0.0.1 port="$pulse_port" \
    auth-anonymous=1 >/dev/null
  client_env=(env PULSE_SERVER="tcp:127.0.0.1:$pulse_port")
else
  client_env=(env)
fi
# The microphone's writer starts now with silence (a microphone that delivers nothing is
# one the client closes and reopens) and plays the bursts once $work/go exists.
python3 bench/device_path.py "$work/mic.fifo" "$seconds" "$work/go" >"$work/result.json" &
writer=$!
pids+=($writer)

port=$(free_port)
"$bin/cromulent-server" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pids+=($!)
wait_port "$port"
run_for=$((seconds + 8))
# Receiver: hears through the speaker, sends silence.
printf 'join General\nwait peer mic 20\nsleep %s\nstats\nquit\n' "$((seconds + 4))" >"$work/rx.script"
RUST_LOG=cromulent=debug "${client_env[@]}" "$bin/cromulent" headless --server "ws://127.0.0.1:$port" --user ear \
  --audio-in silence --audio-out "device${DEVICE:+:$DEVICE}" --script "$work/rx.script" ${FRAME_MS:+--frame-ms "$FRAME_MS"} >"$work/rx.out" 2>"$work/rx.err" &
rx=$!
pids+=($rx)
# Sender: its stats near the end say what its capture processing cost in the call.
printf 'sleep %s\nstats\n' "$((seconds + 6))" >"$work/tx.script"
RUST_LOG=cromulent=debug "${client_env[@]}" "$bin/cromulent" headless --server "ws://127.0.0.1:$port" --user mic \
  --join General --audio-in "device${DEVICE:+:$DEVICE}" --audio-out null --for "$run_for" ${FRAME_MS:+--frame-ms "$FRAME_MS"} \
  --script "$work/tx.script" \
  --processing "${PROCESSING:-all}" >"$work/tx.out" 2>"$work/tx.err" &
tx=$!
pids+=($tx)
# The sender sends nothing while its microphone is silent: wait for the call, not for audio.
for _ in $(seq 200); do grep -q '"event":"peer".*"state":"connected"' "$work/rx.out" 2>/dev/null && break; sleep 0.1; done
sleep 1
if [ "${PULSE_TRANSPORT:-unix}" = tcp ]; then
  # Proof the clients came over TCP: the daemon names each client's transport.
  echo "# clients on the sound server over TCP: $(pactl list clients | grep -c 'native-protocol.peer = "TCP/IP')"
fi

# CPU ticks of every thread of a process: "tid comm ticks" lines.
ticks() { for t in /proc/"$1"/task/*; do echo "$(basename "$t") $(tr ' ' _ <"$t/comm") $(awk '{print $14+$15}' "$t/stat")"; done; }
# Whole-process CPU too: threads that start or end inside the window count there only.
proc_ticks() { awk '{print $14+$15}' /proc/"$1"/stat; }
ticks "$tx" >"$work/tx.0"; ticks "$rx" >"$work/rx.0"
proc_ticks "$tx" >"$work/tx.p0"; proc_ticks "$rx" >"$work/rx.p0"
t0=$(date +%s.%N)
touch "$work/go"
wait "$writer"
t1=$(date +%s.%N)
ticks "$tx" >"$work/tx.1"; ticks "$rx" >"$work/rx.1"
proc_ticks "$tx" >"$work/tx.p1"; proc_ticks "$rx" >"$work/rx.p1"
rss_tx=$(awk '/VmRSS/{print $2}' /proc/"$tx"/status)
rss_rx=$(awk '/VmRSS/{print $2}' /proc/"$rx"/status)
wait "$rx" "$tx" || true
grep -q '"event":"audio"' "$work/rx.out" || { echo "receiver heard nothing" >&2; cat "$work"/*.err >&2; exit 1; }
hz=$(getconf CLK_TCK)

python3 - "$work" "$t0" "$t1" "$hz" "$rss_tx" "$rss_rx" <<'EOF'
import json, sys
work, t0, t1, hz, rss_tx, rss_rx = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
span = t1 - t0
r = json.load(open(f"{work}/result.json"))
d = sorted(r["delays_ms"])
pct = lambda p: d[min(len(d) - 1, int(round(p / 100 * (len(d) - 1))))] if d else float("nan")
print(f"mouth-to-ear over {span:.0f} s: n={len(d)} of {r['sent']} bursts heard, "
      f"min {d[0] if d else 'nan'} ms, p50 {pct(50)} ms, p95 {pct(95)} ms, max {d[-1] if d else 'nan'} ms")
def threads(name):
    a = {l.split()[0]: l.split() for l in open(f"{work}/{name}.0")}
    b = {l.split()[0]: l.split() for l in open(f"{work}/{name}.1")}
    rows = [(v[1], (int(v[2]) - int(a[k][2])) / hz / span * 100) for k, v in b.items() if k in a]
    return rows
for name, role, rss in (("tx", "sender (mic device)", rss_tx), ("rx", "receiver (speaker device)", rss_rx)):
    rows = threads(name)
    ticks = int(open(f"{work}/{name}.p1").read()) - int(open(f"{work}/{name}.p0").read())
    total = ticks / hz / span * 100
    busy = ", ".join(f"{n} {c:.1f}%" for n, c in sorted(rows, key=lambda x: -x[1]) if c >= 0.5)
    print(f"{role}: CPU {total:.1f}% of a core ({busy or 'no thread >= 0.5%'}), RSS {rss / 1024:.0f} MiB")
processing = [json.loads(l) for l in open(f"{work}/tx.out") if '"event":"processing"' in l]
for p in processing[-1:]:
    if p.get("cpu_percent") is not None:
        print(f"sender's capture processing: {p['cpu_percent']:.2f}% of a core in the call "
              "(the engine thread's CPU time in the chain per second of microphone audio)")
stats = [json.loads(l) for l in open(f"{work}/rx.out") if '"event":"stats"' in l]
for s in stats[-1:]:
    for p in s["peers"]:
        print(f"receiver's jitter buffer: {p['concealed']} frames concealed, depth {p['buffer_frames']} frames, {p['packets_lost']} packets lost")
EOF
grep -h "microphone closed\|speaker closed\|opened" "$work/tx.err" "$work/rx.err" | sed 's/\x1b\[[0-9;]*m//g' | sed 's/^/# /' || true
