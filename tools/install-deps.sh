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
  python3-torch python3-numpy libopenblas0-pthread
  fluidsynth
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-libav
  libcairo2-dev libpango1.0-dev python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  timgm6mb-soundfont gstreamer1.0-plugins-ugly gstreamer1.0-x
  mosquitto libmosquitto-dev librdkafka-dev python3-paho-mqtt openssl
"
# The timgm6mb line is for tools/demo.sh: MIDI rendering (fluidsynth) with the TimGM6mb soundfont
# (listed so that it, not another General MIDI soundfont, satisfies fluidsynth),
# x264enc for annotated.mp4, and X video sinks for --show. The demo's media
# packages (opencv-doc, tuxpaint-stamps-default, openttd-openmsx) are not
# installed: tools/demo_media.py fetches them with `apt-get download` into a cache.
# The mosquitto line is for nymetapublish: libmosquitto (MQTT) and librdkafka (Kafka)
# to build it, the mosquitto broker, mosquitto_passwd and openssl (a test CA) for its
# tests, paho-mqtt for examples/fleet_table.py.
# libopenblas0-pthread: Debian's torch calls the generic reference BLAS unless an
# optimised one provides libblas.so.3 (30x slower training without it).
if [ "$(id -u)" != 0 ]; then
  exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $PACKAGES
