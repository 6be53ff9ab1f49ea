# Sourced by the device benchmarks: a private PulseAudio user daemon (no sound card needed)
# with a null-sink speaker `spk` as the default sink; the caller loads its microphone.
# Installs pulseaudio, pulseaudio-utils and libasound2-plugins with apt-get when missing
# (root). cpal reaches the daemon through ALSA's pulse plugin (the `default` ALSA device).
#
#   pulse_start DIR   start it with its runtime files under DIR; exports the environment
#                     (XDG_RUNTIME_DIR, HOME) every later client finds it by
#   pulse_stop        stop it (safe to call twice, and from an EXIT trap)

pulse_start() {
  local dir=$1
  PULSE_DIR=$dir
  if ! command -v pulseaudio >/dev/null || ! command -v pactl >/dev/null ||
     ! ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1; then
    echo "# installing pulseaudio pulseaudio-utils libasound2-plugins" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q pulseaudio pulseaudio-utils libasound2-plugins >&2
  fi
  mkdir -p "$dir/rt" "$dir/home"
  chmod 700 "$dir/rt"
  # cargo and rustup keep finding their homes after HOME moves.
  export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup} CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
  export XDG_RUNTIME_DIR=$dir/rt HOME=$dir/home
  unset PULSE_SERVER PULSE_SINK PULSE_SOURCE
  pulseaudio --daemonize --exit-idle-time=-1 -n --load=module-native-protocol-unix \
    --log-target="file:$dir/pulse.log"
  for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
  pactl load-module module-null-sink sink_name=spk >/dev/null
  pactl set-default-sink spk
}

pulse_stop() {
  # Only the daemon pulse_start started, never the user's own.
  [ -n "${PULSE_DIR:-}" ] || return 0
  XDG_RUNTIME_DIR=$PULSE_DIR/rt HOME=$PULSE_DIR/home pulseaudio --kill 2>/dev/null || true
}
