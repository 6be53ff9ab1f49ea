#!/usr/bin/env bash
# Builds the C++ WebRTC audio processing module (2.1, the source webrtc-audio-processing-sys
# 2.1.0 bundles) for apm-compare's `webrtc-apm` feature, from Debian packages only, into
# ${CARGO_TARGET_DIR:-target}/webrtc-apm (once; ~2.5 min on 2 cores). Why not the crate's
# `bundled` feature: its meson build wants abseil >= 20240722 and fetches it from GitHub and
# wrapdb (not reachable here); Debian 12's libabsl-dev is 20220623, which lacks
# absl/strings/has_absl_stringify.h and absl/base/nullability.h that the module includes; and
# the crate's build script runs `meson setup --reconfigure` on a fresh directory, which
# Debian 12's meson 1.0.1 refuses. So: abseil 20240722.0 from Debian 13's source package
# (fetched with apt-get through a private source list — the system's sources are left alone),
# built static and position-independent with cmake; the module built shared with meson against
# it (abseil folded into the .so). Then, for cargo (bench/apm-compare.sh does this; the
# include path because the crate's build script takes only the first of pkg-config's):
#   CPLUS_INCLUDE_PATH=$prefix/include PKG_CONFIG_PATH=$prefix/lib/pkgconfig \
#     cargo build -p cromulent-bench --features webrtc-apm
#   LD_LIBRARY_PATH=$prefix/lib target/.../apm-compare --module webrtc ...
# Needs root (or sudo) for apt-get install: meson ninja-build cmake pkg-config libclang-dev
# dpkg-dev (libclang for the crate's bindgen).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(realpath -m "${CARGO_TARGET_DIR:-target}/webrtc-apm")
[ -e "$prefix/lib/pkgconfig/webrtc-audio-processing-2.pc" ] && { echo "$prefix"; exit 0; }
sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  meson ninja-build cmake pkg-config libclang-dev dpkg-dev >/dev/null
work=$prefix/build
mkdir -p "$work/apt/lists/partial"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  >"$work/apt/sources.list"
apt=(apt-get -qq -o Dir::Etc::SourceList="$work/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o Dir::State::Lists="$work/apt/lists")
"${apt[@]}" update
(cd "$work" && "${apt[@]}" source abseil=20240722.0-4 >/dev/null)
cmake -S "$work/abseil-20240722.0" -B "$work/absl" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
nice -n 19 ninja -C "$work/absl" install >/dev/null
# The module's source as the crate ships it (cargo fetch puts it under CARGO_HOME).
cargo fetch --locked -q
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/webrtc-audio-processing-sys-2.1.0/webrtc-audio-processing | head -1)
PKG_CONFIG_PATH=$prefix/lib/pkgconfig meson setup --wrap-mode=nofallback --prefix "$prefix" \
  --libdir lib "$work/apm" "$src" >/dev/null
nice -n 19 ninja -C "$work/apm" install >/dev/null
echo "$prefix"
