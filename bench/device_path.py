#!/usr/bin/env python3
"""Mouth-to-ear through PulseAudio virtual devices (driven by bench/device-path.sh).

Feeds a microphone FIFO (module-pipe-source, float32le 48 kHz mono) in real time with silence
and a 1 kHz burst every BURST_EVERY seconds, records the speaker's monitor with parec, and
times each burst from the moment its first sample went into the FIFO to the moment its first
sample came out of the monitor. Both ends are stamped on one clock (time.monotonic): the
writer stamps the chunk that starts a burst as it writes it; the reader stamps each chunk as
it arrives and places the onset inside it by counting samples back from the chunk's end.

Usage: device_path.py FIFO SECONDS [GO]  (parec must find the daemon through the environment;
with GO, silence is written until the file GO exists, then the SECONDS of bursts start)
Prints one JSON object: the delays in ms, how many bursts were sent and heard, and the p50 and
p95 of the delays (nearest rank, null when nothing was heard).
"""

import array
import fcntl
import json
import os
import math
import subprocess
import sys
import termios
import threading
import time

RATE = 48_000
CHUNK = 240  # 5 ms: the writer's timestamp resolution
BURST_EVERY = 0.5
BURST_LEN = 960  # 20 ms
THRESHOLD = 0.05
QUIET_BEFORE = 0.2  # an onset needs this much silence before it (echoes, codec tails)


def idle(f, go):
    """Silence into the FIFO until the file `go` exists, only while the FIFO is nearly empty:
    until a client records, PulseAudio does not read it, and a full FIFO would be a backlog
    the bursts then sit behind. A microphone that delivers nothing at all is not what is
    measured."""
    silence = bytes(4 * CHUNK)
    queued = array.array("i", [0])
    start, n = time.monotonic(), 0
    while not os.path.exists(go):
        delay = start + n / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        fcntl.ioctl(f.fileno(), termios.FIONREAD, queued)
        if queued[0] < 2 * len(silence):
            f.write(silence)
        n += CHUNK


def writer(fifo, seconds, sent, go):
    tone = array.array("f", (0.5 * math.sin(2 * math.pi * 1000 * i / RATE) for i in range(BURST_LEN)))
    silence = array.array("f", [0.0] * CHUNK)
    every = int(BURST_EVERY * RATE)
    with open(fifo, "wb", buffering=0) as f:
        if go:
            idle(f, go)
        start = time.monotonic()
        n = 0
        while n < seconds * RATE:
            # Pace to the wall clock so the FIFO never holds more than a chunk of backlog.
            due = start + n / RATE
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pos = n % every
            if pos < BURST_LEN and n >= RATE:  # the first second primes the devices
                chunk = tone[pos : pos + CHUNK]
                if pos == 0:
                    sent.append(time.monotonic())
            else:
                chunk = silence
            f.write(chunk.tobytes())
            n += CHUNK


def reader(proc, heard, stop):
    quiet = 0
    need_quiet = int(QUIET_BEFORE * RATE)
    while not stop.is_set():
        data = proc.stdout.read(CHUNK * 4)
        if not data:
            return
        now = time.monotonic()
        samples = array.array("f")
        samples.frombytes(data[: len(data) // 4 * 4])
        for i, s in enumerate(samples):
            if abs(s) >= THRESHOLD:
                if quiet >= need_quiet:
                    heard.append(now - (len(samples) - i) / RATE)
                quiet = 0
            else:
                quiet += 1


def main():
    fifo, seconds = sys.argv[1], float(sys.argv[2])
    go = sys.argv[3] if len(sys.argv) > 3 else None
    parec = subprocess.Popen(
        ["parec", "-d", "spk.monitor", "--format=float32le", "--rate=48000", "--channels=1",
         "--latency-msec=5", "--raw"],
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    sent, heard, stop = [], [], threading.Event()
    t = threading.Thread(target=reader, args=(parec, heard, stop), daemon=True)
    t.start()
    writer(fifo, seconds, sent, go)
    time.sleep(0.5)
    stop.set()
    parec.terminate()
    parec.wait()
    # Pair each burst with the first onset heard after it and before the next burst.
    delays = []
    for k, s in enumerate(sent):
        nxt = sent[k + 1] if k + 1 < len(sent) else s + BURST_EVERY
        match = [h for h in heard if s <= h < nxt]
        if match:
            delays.append(round((match[0] - s) * 1000, 1))
    d = sorted(delays)
    pct = lambda p: d[min(len(d) - 1, int(round(p / 100 * (len(d) - 1))))] if d else None
    print(json.dumps({"sent": len(sent), "heard": len(delays), "onsets": len(heard), "delays_ms": delays,
                      "p50_ms": pct(50), "p95_ms": pct(95)}))


if __name__ == "__main__":
    main()
