# shellcheck shell=bash
# Sourced by bench/speech-quality.sh and bench/apm-compare.sh: the tools and the sounds of the
# speech benchmarks, one copy.
#   speech_tools: espeak-ng, sox and alsa-utils (apt-get if missing) and a Python venv with
#     numpy and pesq under target/ (made once); sets $venv.
#   fan_noise FILE: one fan (below), a fresh draw of its noise each time.
#   speech_inputs DIR: DIR/clip.wav — 11.4 s of a natural voice, alsa-utils' channel
#     announcements (/usr/share/sounds/alsa) back to back at 48 kHz, peak −3 dBFS (PESQ wants
#     8–12 s); DIR/far.wav — the far end of the echo case, another voice (espeak-ng); DIR/fan.wav
#     — a laptop fan, brown and pink noise mixed, 20 s.
sounds=/usr/share/sounds/alsa

speech_tools() {
  local need pkg what sudo
  for need in espeak-ng:espeak-ng sox:sox alsa-utils:$sounds/Front_Center.wav; do
    pkg=${need%%:*} what=${need#*:}
    { command -v "$what" || [ -e "$what" ]; } >/dev/null || {
      sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
      "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    }
  done
  venv=${CARGO_TARGET_DIR:-target}/pesq-venv
  [ -x "$venv/bin/python" ] || {
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q numpy pesq==0.0.4
  }
}

speech_inputs() {
  local dir=$1
  sox "$sounds"/{Front_Center,Front_Left,Front_Right,Rear_Center,Rear_Left,Rear_Right,Side_Left,Side_Right}.wav \
    -r 48000 -c 1 -b 16 "$dir/clip.wav" gain -n -3
  espeak-ng -v en-us -s 150 -w "$dir/raw.wav" \
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
  sox "$dir/raw.wav" -r 48000 -c 1 -b 16 "$dir/far.wav" gain -n -3
  fan_noise "$dir/fan.wav"
}

# fan_noise FILE: a laptop fan, brown and pink noise mixed, 20 s — a fresh draw each time.
fan_noise() {
  sox -n -r 48000 -c 1 -b 16 "$1" synth 20 brownnoise synth 20 pinknoise mix gain -n -20
}
