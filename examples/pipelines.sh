#!/bin/sh
# gst-launch-1.0 lines for the Nystream elements: files, a microphone and a
# camera. Run one with `examples/pipelines.sh NAME [FILE]`, or print them all
# with `examples/pipelines.sh list`.
#
#   audio-file FILE    any audio file decodebin reads (WAV, Ogg, MP3, ...) ->
#                      nyaudiodetect -> JSON lines (nymetaconvert)
#   video-file FILE    any video file -> nyvideodetect -> JSON lines
#   video-overlay FILE video file -> nyvideodetect -> nyoverlay -> display
#   av-overlay FILE    a file with sound and picture: the soundtrack's audio
#                      events drawn on the picture (nyoverlay detector=NAME)
#   mic                autoaudiosrc (PulseAudio/PipeWire/ALSA) -> nyaudiodetect
#                      -> JSON lines until Ctrl-C
#   camera             v4l2src -> nyvideodetect -> nyoverlay -> display, and
#                      JSON lines, until Ctrl-C
#
# Settings (environment):
#   AUDIO_MODEL   audio model file (default: the shipped models/audio-events.safetensors,
#                 the element's own default)
#   VIDEO_MODEL   video model file (default: the shipped models/video-actions.safetensors)
#   RESULTS       where nymetaconvert writes the JSON lines (default "-": stdout)
#   VIDEO_SINK    display sink of the overlay lines (default autovideosink)
#   AUDIO_SINK    av-overlay's audio output (default: audioconvert ! audioresample
#                 ! autoaudiosink; it paces the audio detector with the picture)
#   AUDIO_SOURCE  the mic line's source (default autoaudiosrc; e.g. pulsesrc device=...)
#   CAMERA_SOURCE the camera line's source (default v4l2src device=$CAMERA_DEVICE,
#                 CAMERA_DEVICE defaults to /dev/video0)
#   GST_LAUNCH    the launcher (default "gst-launch-1.0 -q -e": -q keeps stdout for
#                 the JSON lines, -e makes Ctrl-C drain the detector so the last
#                 partial result is written)
#
# The elements come from the build tree with
#   GST_PLUGIN_PATH=build/plugin examples/pipelines.sh audio-file clip.wav
# or `meson devenv -C build`, or from the install prefix.
#
# Live sources: a `queue leaky=downstream` sits between the source and the
# detector, so when the machine cannot keep up the oldest buffers are dropped
# instead of latency growing; the queue marks the buffer after a drop DISCONT
# and the detector starts a fresh window there (reset-on-discontinuity). The
# detector's own QoS (on by default) skips model steps for late buffers without
# dropping any. Files use sync=false sinks where nothing is displayed: they run
# as fast as the CPU allows.
set -eu

models=$(dirname "$0")/../models
AUDIO_MODEL=${AUDIO_MODEL:-$models/audio-events.safetensors}
VIDEO_MODEL=${VIDEO_MODEL:-$models/video-actions.safetensors}
RESULTS=${RESULTS:--}
VIDEO_SINK=${VIDEO_SINK:-autovideosink}
AUDIO_SINK=${AUDIO_SINK:-audioconvert ! audioresample ! autoaudiosink}
AUDIO_SOURCE=${AUDIO_SOURCE:-autoaudiosrc}
CAMERA_SOURCE=${CAMERA_SOURCE:-v4l2src device=${CAMERA_DEVICE:-/dev/video0}}
GST_LAUNCH=${GST_LAUNCH:-gst-launch-1.0 -q -e}

# One description per name; FILE is substituted (quoted) by the caller.
# shellcheck disable=SC2016  # $file is expanded by eval in run below
describe () {
  case "$1" in
    audio-file) echo 'filesrc location="$file" ! decodebin ! audioconvert
  ! nyaudiodetect model="$AUDIO_MODEL"
  ! nymetaconvert location="$RESULTS" ! fakesink sync=false' ;;
    video-file) echo 'filesrc location="$file" ! decodebin ! videoconvert
  ! nyvideodetect model="$VIDEO_MODEL"
  ! nymetaconvert location="$RESULTS" ! fakesink sync=false' ;;
    video-overlay) echo 'filesrc location="$file" ! decodebin ! videoconvert
  ! nyvideodetect model="$VIDEO_MODEL"
  ! videoconvert ! nyoverlay ! videoconvert ! $VIDEO_SINK' ;;
    av-overlay) echo 'filesrc location="$file" ! decodebin name=d
  d. ! queue ! audioconvert ! nyaudiodetect name=det model="$AUDIO_MODEL" ! $AUDIO_SINK
  d. ! queue ! videoconvert ! nyoverlay detector=det ! videoconvert ! $VIDEO_SINK' ;;
    mic) echo '$AUDIO_SOURCE
  ! queue leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=500000000
  ! audioconvert ! nyaudiodetect model="$AUDIO_MODEL"
  ! nymetaconvert location="$RESULTS" ! fakesink sync=false' ;;
    camera) echo '$CAMERA_SOURCE
  ! queue leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0
  ! videoconvert ! nyvideodetect model="$VIDEO_MODEL"
  ! nymetaconvert location="$RESULTS"
  ! videoconvert ! nyoverlay ! videoconvert ! $VIDEO_SINK' ;;
    *) return 1 ;;
  esac
}

names="audio-file video-file video-overlay av-overlay mic camera"

usage () {
  sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit "$1"
}

[ $# -ge 1 ] || usage 2
name=$1
case "$name" in
  -h|--help) usage 0 ;;
  list)
    # The lines with the current settings filled in, ready to paste.
    for n in $names; do
      file=FILE
      eval "set -- $(describe "$n" | tr '\n' ' ')"
      printf '# %s\n%s' "$n" "$GST_LAUNCH"
      for arg; do
        case "$arg" in
          !|d.) printf ' \\\n  %s' "$arg" ;;
          *[!A-Za-z0-9_./=:,+-]*) printf " '%s'" "$arg" ;;
          *) printf ' %s' "$arg" ;;
        esac
      done
      printf '\n\n'
    done
    exit 0 ;;
esac
line=$(describe "$name") || { echo "$0: unknown pipeline '$name' (one of: $names)" >&2; exit 2; }
case "$name" in
  *-file|*-overlay)
    [ $# -ge 2 ] || { echo "$0: $name needs a FILE" >&2; exit 2; }
    file=$2
    [ -r "$file" ] || { echo "$0: cannot read '$file'" >&2; exit 1; } ;;
esac
case "$line" in
  *nyoverlay*)
    if ! gst-inspect-1.0 nyoverlay >/dev/null 2>&1; then
      echo "$0: $name needs the nyoverlay element, which this installation lacks" >&2
      exit 77  # meson's "skipped"
    fi ;;
esac
# Newlines are whitespace to gst-launch; eval expands the quoted variables.
eval "exec $GST_LAUNCH $(echo "$line" | tr '\n' ' ')"
