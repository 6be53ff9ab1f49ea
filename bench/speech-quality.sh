#!/usr/bin/env bash
# Speech quality through the real call path (issue 19): a spoken clip (espeak-ng, 48 kHz) is
# one engine's microphone, a second engine records what it plays; both relay-only through a
# loopback coturn, each upload through the impairment relay (bench/src/impair.rs: loss, delay,
# jitter — this kernel has no netem). Scored with wideband PESQ (ITU-T P.862.2, PyPI `pesq`,
# time-aligned) over several seeds; prints every run and the median per condition.
# Conditions: clean, 5 % loss, 10 % loss, 20 ± 10 ms jitter — the call, and beside it the same
# clip through Opus alone as the engine configures it (`speech-call --opus-alone`: no network,
# the same loss, FEC from the next packet, the encoder expecting 10 %). In the call the encoder's
# expected loss follows the receiver's reports (src/engine/loss_feedback.rs).
# Needs espeak-ng and sox (installed with apt if missing) and a Python venv with numpy and pesq
# (made under target/, once).
# Usage: bench/speech-quality.sh [SEEDS]   (default 5)
source "$(dirname "$0")/common.sh"
machine
seeds=${1:-5}
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || {
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends espeak-ng sox >/dev/null
  }
done
venv=${CARGO_TARGET_DIR:-target}/pesq-venv
[ -x "$venv/bin/python" ] || {
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy pesq==0.0.4
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# About 8 s of speech (PESQ wants 8–12 s), at a speech level (peak −3 dBFS).
espeak-ng -v en-us -s 150 -w "$tmp/raw.wav" \
  "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
sox "$tmp/raw.wav" -r 48000 -c 1 -b 16 "$tmp/clip.wav" gain -n -3
echo "# clip: $(soxi -D "$tmp/clip.wav") s of espeak-ng speech at 48 kHz"
for condition in clean:0,0,0 loss5:0,0,5 loss10:0,0,10 jitter:20,10,0; do
  name=${condition%%:*}
  impair=${condition#*:}
  scores=()
  alone_scores=()
  for seed in $(seq "$seeds"); do
    out="$tmp/$name-$seed.wav"
    "$bin/speech-call" --clip "$tmp/clip.wav" --out "$out" --impair "$impair" --seed "$seed" >"$tmp/run.txt"
    read -r score delay < <("$venv/bin/python" bench/pesq_score.py "$tmp/clip.wav" "$out")
    echo "$name seed $seed: PESQ-WB $score (delay $delay ms) $(sed 's/RESULT speech-call: //' "$tmp/run.txt")"
    scores+=("$score")
    alone="$tmp/$name-$seed-alone.wav"
    "$bin/speech-call" --clip "$tmp/clip.wav" --out "$alone" --impair "$impair" --seed "$seed" --opus-alone >/dev/null
    read -r score _ < <("$venv/bin/python" bench/pesq_score.py "$tmp/clip.wav" "$alone")
    alone_scores+=("$score")
  done
  printf '%s\n' "${alone_scores[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "RESULT %s, Opus alone: median PESQ-WB %.2f\n", n, m}'
  printf '%s\n' "${scores[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "RESULT %s: median PESQ-WB %.2f over %d seeds (min %.2f, max %.2f)\n", n, m, NR, a[1], a[NR]}'
done
