#!/usr/bin/env bash
# The capture processing's module alone, offline, `sonora` (what the product runs) against the
# C++ WebRTC audio processing module (what browsers run, through `webrtc-audio-processing`
# 2.1; built by bench/webrtc-apm-build.sh) — issue 19's candidates table in BENCHMARKS.md.
# The same sounds as bench/speech-quality.sh (bench/speech-inputs.sh), fed in 10 ms chunks
# (bench/src/apm.rs), scored with wideband PESQ after alignment (bench/pesq_score.py, which
# also gives the delay the module added, by cross-correlation). Cases, for each module:
# clean speech through the noise suppressor at each level, through the echo canceller alone
# (nothing playing) with and without the high-pass filter, and through both; speech in the fan
# at 5 dB SNR per level; the fan alone (dB taken off); the echo case — the far end's voice
# looped from the start, heard through a room (80 ms, −6 dB, reverb tail), the near end
# speaking after 6 s: ERLE per second of single talk, then the near end's PESQ in double talk;
# the same with the room at −20 dB and with no echo at all (the far end only plays); the time
# each run spent in the module per second of audio; and a few of these with both modules at the
# same internal rate.
# `speex` is Speex's echo canceller (MDF, what Mumble runs; the system's libspeexdsp): the echo
# cases only, alone, with its residual-echo suppressor, and followed by sonora's noise
# suppressor.
# `aec3` is AEC3 built from its own crate's blocks (sonora-aec3) with its configuration open:
# each preset (apm-compare --help) in the double talk of the linear rooms and with a
# nonlinear speaker (soft clipping), where the echo a linear filter cannot model is left to
# the suppressor.
# `rnnoise` is RNNoise in pure Rust (nnnoiseless) as the noise suppressor: alone, after
# sonora's AEC3 (the pair it would make in the product), and after sonora's own suppressor
# (both in series), beside sonora's alone on the same fan.
# Usage: bench/apm-compare.sh [sonora webrtc speex aec3 rnnoise]   (modules; default sonora webrtc)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then modules=("$@"); else modules=(sonora webrtc); fi
target=${CARGO_TARGET_DIR:-target}
features=()
for m in "${modules[@]}"; do
  case $m in
    webrtc)
      prefix=$(bench/webrtc-apm-build.sh | tail -1)
      export CPLUS_INCLUDE_PATH=$prefix/include PKG_CONFIG_PATH=$prefix/lib/pkgconfig
      export LD_LIBRARY_PATH=$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
      features+=(webrtc-apm) ;;
    speex)
      dpkg-query -W -f='${Status}' libspeexdsp-dev 2>/dev/null | grep -q "install ok installed" || {
        sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends libspeexdsp-dev >/dev/null
      }
      features+=(speex) ;;
  esac
done
cargo build --release --locked -q -p cromulent-bench --features "${features[*]}" --bin apm-compare
echo "# $(date -u '+%F %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
source bench/speech-inputs.sh
speech_tools
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
speech_inputs "$tmp"
# NAME MODULE ARGS...: one run, its PESQ against the clean clip and its other figures.
case_() {
  local name=$1 module=$2
  shift 2
  "$target/release/apm-compare" --module "$module" --clip "$tmp/clip.wav" --out "$tmp/out.wav" "$@" >"$tmp/run.txt"
  local figures
  figures=$(sed -n 's/^RESULT apm-compare: //p' "$tmp/run.txt" | sed 's/^[A-Za-z]* Stages {[^}]*}: //' | paste -sd';')
  read -r score delay < <("$venv/bin/python" bench/pesq_score.py "$tmp/clip.wav" "$tmp/out.wav")
  echo "RESULT $name, $module: PESQ-WB $score (delay $delay ms); $figures"
}
case_ "clean, as it is" none
case_ "fan 5 dB SNR, as it is" none --noise "$tmp/fan.wav" --snr 5
for gain in 0.5 0.1; do
  case_ "double talk, room gain $gain, as it is (echo left in)" none --far "$tmp/far.wav" --room-gain "$gain" --near-after-s 6
done
for m in "${modules[@]}"; do
  if [ "$m" = rnnoise ]; then
    case_ "clean, rnnoise" rnnoise
    case_ "fan 5 dB SNR, rnnoise" rnnoise --noise "$tmp/fan.wav" --snr 5
    case_ "fan alone, rnnoise" rnnoise --noise "$tmp/fan.wav" --snr 5 --noise-only | sed 's/PESQ-WB [^;]*; //'
    case_ "clean, echo then rnnoise (nothing playing)" sonora-rnnoise --echo
    case_ "fan 5 dB SNR, echo then rnnoise" sonora-rnnoise --echo --noise "$tmp/fan.wav" --snr 5
    # Both suppressors in series (sonora's at High, as the product runs it, then RNNoise),
    # beside sonora's alone on the same draw of the fan.
    case_ "clean, echo + noise high (nothing playing)" sonora --echo --noise-level high
    case_ "fan 5 dB SNR, echo + noise high" sonora --echo --noise-level high --noise "$tmp/fan.wav" --snr 5
    case_ "clean, echo + noise high then rnnoise (nothing playing)" sonora-then-rnnoise --echo \
      --noise-level high
    case_ "fan 5 dB SNR, echo + noise high then rnnoise" sonora-then-rnnoise --echo --noise-level high \
      --noise "$tmp/fan.wav" --snr 5
    case_ "fan alone, echo + noise high then rnnoise" sonora-then-rnnoise --echo --noise-level high \
      --noise "$tmp/fan.wav" --snr 5 --noise-only | sed 's/PESQ-WB [^;]*; //'
    continue
  fi
  if [ "$m" = aec3 ]; then
    for preset in default no-coarse transparent30 transparent100 transparent1000 linear; do
      case_ "clean, nothing playing, aec3 $preset" aec3-blocks --echo --aec3 "$preset"
      for gain in 0.5 0.1 0; do
        case_ "double talk, room gain $gain, aec3 $preset" aec3-blocks --echo --aec3 "$preset" \
          --far "$tmp/far.wav" --room-gain "$gain" --near-after-s 6
      done
      for drive in 2 4; do
        case_ "double talk, room gain 0.5, speaker driven (k $drive), aec3 $preset" aec3-blocks --echo \
          --aec3 "$preset" --far "$tmp/far.wav" --room-gain 0.5 --room-drive "$drive" --near-after-s 6
      done
    done
    continue
  fi
  if [ "$m" = speex ]; then
    case_ "clean, echo (nothing playing)" speex --echo
    for gain in 0.5 0.1 0; do
      for stages in "--echo" "--echo --residual-echo"; do
        # shellcheck disable=SC2086 # the stages are separate arguments
        case_ "double talk, room gain $gain, ${stages//--/}" speex $stages --far "$tmp/far.wav" \
          --room-gain "$gain" --near-after-s 6
      done
      case_ "double talk, room gain $gain, speex echo then sonora noise high" speex-sonora --echo \
        --noise-level high --far "$tmp/far.wav" --room-gain "$gain" --near-after-s 6
    done
    for drive in 2 4; do
      for stages in "--echo" "--echo --residual-echo"; do
        # shellcheck disable=SC2086 # the stages are separate arguments
        case_ "double talk, room gain 0.5, speaker driven (k $drive), ${stages//--/}" speex $stages \
          --far "$tmp/far.wav" --room-gain 0.5 --room-drive "$drive" --near-after-s 6
      done
    done
    continue
  fi
  for level in low moderate high very-high; do
    case_ "clean, noise $level" "$m" --noise-level "$level"
    case_ "fan 5 dB SNR, noise $level" "$m" --noise-level "$level" --noise "$tmp/fan.wav" --snr 5
    case_ "fan alone, noise $level" "$m" --noise-level "$level" --noise "$tmp/fan.wav" --snr 5 --noise-only \
      | sed 's/PESQ-WB [^;]*; //'
  done
  case_ "clean, echo (nothing playing)" "$m" --echo
  case_ "clean, echo + high-pass (nothing playing)" "$m" --echo --high-pass
  case_ "clean, echo + noise high (nothing playing)" "$m" --echo --noise-level high
  # Both at the same internal rate (sonora's default is 32 kHz, the C++ module's 48 kHz).
  for rate in 32000 48000; do
    case_ "clean, noise high, internal rate $rate" "$m" --noise-level high --internal-rate "$rate"
    case_ "clean, echo + noise high (nothing playing), internal rate $rate" "$m" --echo --noise-level high \
      --internal-rate "$rate"
    case_ "double talk, room gain 0.5, echo, internal rate $rate" "$m" --echo --far "$tmp/far.wav" \
      --room-gain 0.5 --near-after-s 6 --internal-rate "$rate"
  done
  for stages in "--echo" "--echo --high-pass" "--echo --noise-level high"; do
    for gain in 0.5 0.1 0; do
      # shellcheck disable=SC2086 # the stages are separate arguments
      case_ "double talk, room gain $gain, ${stages//--/}" "$m" $stages --far "$tmp/far.wav" \
        --room-gain "$gain" --near-after-s 6
    done
  done
done
