#!/usr/bin/env bash
# Client cost on the device path: bench/client-cost.sh's calls of 2, 4 and 8 users (everyone
# talking, only the observed client, nobody), with the observed client capturing and playing
# through sound devices (--audio-in device --audio-out device) instead of a tone: a private
# PulseAudio daemon whose default microphone is a FIFO (module-pipe-source) fed with a 400 Hz
# tone in real time (a talker that never pauses; PulseAudio's own sine source delivers in
# chunks of up to 2 s, no use for a voice client) and whose default speaker is a null sink,
# both reached through ALSA's pulse plugin as on a desktop. The other users are headless tone talkers. Prints the
# observed client's CPU, per remote peer, and its busiest threads per window.
# Usage: bench/device-cost.sh [USERS [CLIENT-COST OPTIONS…]]   (default 2,4,8)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/pulse.sh
work=$(mktemp -d /tmp/device-cost.XXXXXX)
feeder=
trap '[ -z "$feeder" ] || kill "$feeder" 2>/dev/null; pulse_stop; rm -rf "$work"' EXIT
pulse_start "$work"
pactl load-module module-pipe-source source_name=mic file="$work/mic.fifo" \
  format=float32le rate=48000 channels=1 >/dev/null
pactl set-default-source mic
# The microphone's talker: 400 Hz at -10 dBFS, 5 ms (two whole periods) at a time, paced to the wall clock.
python3 - "$work/mic.fifo" <<'PY' &
import array, math, sys, time
chunk = array.array("f", (0.3 * math.sin(2 * math.pi * 400 * i / 48000) for i in range(240)))
with open(sys.argv[1], "wb", buffering=0) as f:
    start, n = time.monotonic(), 0
    while True:
        delay = start + n / 48000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        f.write(chunk.tobytes())
        n += 240
PY
feeder=$!
users=${1:-2,4,8}
shift || true
bash bench/client-cost.sh "$users" --observed-devices "$@"
