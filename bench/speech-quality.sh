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
# The speech is a natural recording a Debian package ships: alsa-utils' channel announcements
# (/usr/share/sounds/alsa, a human voice, 48 kHz), eight of them back to back, 11.4 s. Then the
# capture processing (src/audio/processing.rs) through the same call: clean speech with it all
# on; speech in fan noise at 5 dB SNR with noise suppression off and on, at its default level
# (strong) and at high (the fan on from the
# call's start); the fan alone (what a silent user in a noisy room sends); the echo case (the receiver talks — espeak-ng, another
# voice — and the sender's room returns it 80 ms later at half level with a reverb tail:
# ERLE per second, then the sender speaks over it: PESQ of the near end during double talk);
# speech at −40 and −6 dBFS through the gain control; and the chain's cost offline.
# Needs espeak-ng, sox and alsa-utils (installed with apt if missing) and a Python venv with
# numpy and pesq (made under target/, once).
# Usage: bench/speech-quality.sh [SEEDS]   (default 5)
source "$(dirname "$0")/common.sh"
machine
seeds=${1:-5}
source "$(dirname "$0")/speech-inputs.sh"
speech_tools
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
speech_inputs "$tmp"
echo "# clip: $(soxi -D "$tmp/clip.wav") s of natural speech (alsa-utils' $sounds) at 48 kHz"
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
# pesq REFERENCE DEGRADED: the score alone.
pesq() { "$venv/bin/python" bench/pesq_score.py "$1" "$2" | cut -d' ' -f1; }
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

# --- the capture processing ---------------------------------------------------------------
# A fresh fan for each seed (the noise is random: the figures with it are medians over fans).
for seed in $(seq "$seeds"); do fan_noise "$tmp/fan-$seed.wav"; done
# NAME REFERENCE ARGS...: PESQ over the seeds of the call with speech-call ARGS (FAN: that
# seed's fan).
processed() {
  local name=$1 ref=$2
  shift 2
  local scores=() args
  for seed in $(seq "$seeds"); do
    args=("${@/#FAN/$tmp/fan-$seed.wav}")
    "$bin/speech-call" --clip "$tmp/clip.wav" --out "$tmp/p.wav" --seed "$seed" "${args[@]}" >"$tmp/run.txt"
    scores+=("$(pesq "$ref" "$tmp/p.wav")")
  done
  echo "RESULT $name: median PESQ-WB $(printf '%s\n' "${scores[@]}" | median) over $seeds seeds ($(printf '%s ' "${scores[@]}"))"
}
processed "clean, processing all" "$tmp/clip.wav" --processing all
processed "clean, processing all, noise suppression at high" "$tmp/clip.wav" --processing echo,noise:high,gain,voice
processed "fan noise 5 dB SNR, processing none" "$tmp/clip.wav" --noise FAN --snr 5
processed "fan noise 5 dB SNR, noise suppression" "$tmp/clip.wav" --noise FAN --snr 5 --processing noise
processed "fan noise 5 dB SNR, noise suppression at high" "$tmp/clip.wav" --noise FAN --snr 5 --processing noise:high
processed "fan noise 5 dB SNR, processing all" "$tmp/clip.wav" --noise FAN --snr 5 --processing all
# The fan alone, at the level it has beside the speech above: what arrives (the level of what
# is heard at all, and the mean power over the whole pass, silence included), and the bit rate;
# each seed's fan, medians. The fan runs from the call's start, as a room's noise does; then
# once more starting with the measurement (a fan that starts: the processing's first second of
# it counted).
fan_alone() {
  local name=$1 heard=() mean=() sent=() line
  shift
  for seed in $(seq "$seeds"); do
    line=$("$bin/speech-call" --clip "$tmp/clip.wav" --out "$tmp/p.wav" --noise "$tmp/fan-$seed.wav" --snr 5 \
      --noise-only --seed "$seed" "$@" | grep '^RESULT speech-call: level heard')
    heard+=("$(sed 's/.*level heard \([^ ]*\) dBFS.*/\1/' <<<"$line")")
    sent+=("$(sed 's/.*sent \([^ ]*\) kbit.*/\1/' <<<"$line")")
    mean+=("$(sed 's/.*mean power heard \([^ ]*\) dBFS.*/\1/' <<<"$line")")
  done
  echo "RESULT fan alone, $name: heard $(printf '%s\n' "${heard[@]}" | median) dBFS," \
    "mean power $(printf '%s\n' "${mean[@]}" | median) dBFS, sent $(printf '%s\n' "${sent[@]}" | median) kbit/s" \
    "(sent: $(printf '%s ' "${sent[@]}"))"
}
for p in none noise noise:high all; do
  fan_alone "processing $p" --processing "$p"
done
fan_alone "processing all, the fan starting with the measurement" --processing all --noise-with-clip
# The echo: ERLE while only the far end talks, then the near end's PESQ in double talk.
for p in all noise,gain,voice; do
  scores=()
  for seed in $(seq "$seeds"); do
    "$bin/speech-call" --clip "$tmp/clip.wav" --far "$tmp/far.wav" --out "$tmp/p.wav" --seed "$seed" \
      --processing "$p" >"$tmp/run.txt"
    sed -n "s/^RESULT speech-call: ERLE/echo, processing $p, seed $seed: ERLE/p" "$tmp/run.txt"
    scores+=("$(pesq "$tmp/clip.wav" "$tmp/p.wav")")
  done
  echo "RESULT echo, processing $p: near-end PESQ-WB in double talk, median $(printf '%s\n' "${scores[@]}" | median) ($(printf '%s ' "${scores[@]}"))"
done
# Gain: quiet and loud speech, twice through (the gain moves at 6 dB/s), level of the second.
for level in -40 -6; do
  "$bin/speech-call" --clip "$tmp/clip.wav" --out "$tmp/p.wav" --level="$level" --repeat 2 --processing gain \
    | sed -n "s/^RESULT speech-call: level heard \([^ ]*\) dBFS.*/RESULT gain: speech at $level dBFS leaves at \1 dBFS/p"
done
"$bin/speech-call" --clip "$tmp/clip.wav" --far "$tmp/far.wav" --out /dev/null --processing all --cost | sed 's/^RESULT /RESULT /'
