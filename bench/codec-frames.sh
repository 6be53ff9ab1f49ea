#!/usr/bin/env bash
# Opus alone at 20, 10 and 5 ms frames, and at 5 ms with the VoIP application against
# restricted low delay (issue 22's choice for the low-delay mode): look-ahead, the measured lag
# of the decoded speech, the packets' modes, DTX, payload and wire bitrate (RTP 12 + SRTP tag
# 10 + UDP 8 + IPv4 20 bytes per packet), the codec's CPU, and wideband PESQ of the decoded
# clip — clean, and at 5 % random loss over several seeds (FEC where the packets carry it,
# else concealment). No network, no engine: `codec-frames` (bench/src/codec.rs) runs the
# client's own Encoder/Decoder. The clip is the natural voice of bench/speech-quality.sh
# (alsa-utils' announcements, 11.4 s). Needs sox and alsa-utils, and the PESQ venv that
# bench/speech-quality.sh makes under target/ (made here too if missing).
# Usage: bench/codec-frames.sh [SEEDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-target}/release
cargo build --release --locked -q -p cromulent-bench --bin codec-frames
eval "$(sed -n '/^machine()/,/^}/p' bench/common.sh)"
machine
seeds=${1:-5}
sounds=/usr/share/sounds/alsa
venv=${CARGO_TARGET_DIR:-target}/pesq-venv
[ -x "$venv/bin/python" ] || {
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy pesq==0.0.4
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sox "$sounds"/{Front_Center,Front_Left,Front_Right,Rear_Center,Rear_Left,Rear_Right,Side_Left,Side_Right}.wav \
  -r 48000 -c 1 -b 16 "$tmp/clip.wav" gain -n -3
cases="20ms-voip 10ms-voip 5ms-voip 5ms-lowdelay"
score() { "$venv/bin/python" bench/pesq_score.py "$tmp/clip.wav" "$1" | cut -d' ' -f1; }
echo "## clean (the encoder expecting 1 % loss, as the engine on a clean link)"
"$bin/codec-frames" --clip "$tmp/clip.wav" --out-dir "$tmp"
for c in $cases; do echo "PESQ-WB clean $c: $(score "$tmp/$c.wav")"; done
echo "## 5 % random loss (the encoder expecting 5 %, the engine's most), $seeds seeds"
for seed in $(seq "$seeds"); do
  mkdir -p "$tmp/$seed"
  "$bin/codec-frames" --clip "$tmp/clip.wav" --out-dir "$tmp/$seed" --loss 5 --expected-loss 5 --seed "$seed" |
    tail -n +3 | sed "s/^/seed $seed /"
done
for c in $cases; do
  for seed in $(seq "$seeds"); do score "$tmp/$seed/$c.wav"; done |
    sort -n | awk -v c="$c" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "RESULT PESQ-WB 5 %% loss %s: median %.2f (%.2f–%.2f)\n", c, m, a[1], a[NR]}'
done
