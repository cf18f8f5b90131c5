#!/bin/sh
# Installs every Debian (bookworm) package Nystream's build, tests and
# benchmarks need. Runs apt-get as root, through sudo when started as a user.
set -e
PACKAGES="
  g++ pkg-config meson ninja-build
  libeigen3-dev
  libgtest-dev libbenchmark-dev
  nlohmann-json3-dev
  clang libclang-rt-14-dev
  libavcodec-dev libavformat-dev libavutil-dev libswresample-dev libswscale-dev libavfilter-dev
  ffmpeg espeak-ng sox asc-music python3-torchaudio
  python3-torch python3-numpy
"
if [ "$(id -u)" != 0 ]; then
  exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $PACKAGES
