#!/bin/sh
# The demo of issue 7, end to end, on a fresh Debian bookworm machine:
#
#   1. installs the packages (tools/install-deps.sh, through sudo when not root);
#   2. builds (meson setup build when missing; ninja -C build);
#   3. makes the demo clip (tools/demo_media.py): opencv-doc's vtest.avi playing,
#      a tuxpaint stamp actor walking, waving, jumping and falling, over a
#      soundtrack of speech (espeak-ng), music (fluidsynth) and an alarm (sox),
#      -> demo-out/demo.mkv and its ground truth demo-out/demo-truth.json;
#   4. runs ONE gst-launch-1.0 pipeline (below) with both detectors, two
#      nyoverlays and nymetaconvert on it -> demo-out/annotated.mp4 (the picture
#      with the video actions' score bars, the audio events' labels and timeline,
#      and the soundtrack) and demo-out/detections.jsonl (both detectors' results
#      in time order);
#   5. prints a per-class timeline, truth above what was found (tools/timeline.py).
#
# Usage: tools/demo.sh [--show] [--skip-install] [--pipeline-only FILE]
#   --show            also show the annotated video on screen (autovideosink; needs
#                     $DISPLAY or $WAYLAND_DISPLAY; the run then takes real time)
#   --skip-install    skip step 1
#   --pipeline-only FILE
#                     steps 4 and 5 only, on FILE (any file with sound and picture
#                     decodebin reads); the plugin comes from $GST_PLUGIN_PATH when
#                     set, else from the build directory
#
# Environment: DEMO_OUT (default demo-out), NYSTREAM_BUILD (build directory,
# default build), DEMO_SECONDS (clip length, default 24), AUDIO_MODEL and
# VIDEO_MODEL (default: the shipped models/audio-events.safetensors and
# models/video-actions.safetensors).
set -eu
here=$(pwd)
cd "$(dirname "$0")/.."

show=0 install=1 media=
while [ $# -gt 0 ]; do
  case "$1" in
    --show) show=1 ;;
    --skip-install) install=0 ;;
    --pipeline-only) [ $# -ge 2 ] || { echo "$0: --pipeline-only needs a FILE" >&2; exit 2; }
      case "$2" in /*) media=$2 ;; *) media=$here/$2 ;; esac; shift ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$0: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

out=${DEMO_OUT:-demo-out}
build=${NYSTREAM_BUILD:-build}
python=/usr/bin/python3   # Debian's, with numpy and PyGObject
started=$(date +%s)
step () { printf '\n== %s (%ss)\n' "$1" "$(($(date +%s) - started))"; }

if [ -z "$media" ]; then
  if [ "$install" = 1 ]; then
    step "installing packages (tools/install-deps.sh)"
    ./tools/install-deps.sh
  fi
  step "building ($build)"
  [ -d "$build" ] || meson setup "$build"
  ninja -C "$build"
  step "making the demo clip (tools/demo_media.py)"
  mkdir -p "$out"
  "$python" tools/demo_media.py --out "$out" --seconds "${DEMO_SECONDS:-24}"
  media=$out/demo.mkv
fi
[ -r "$media" ] || { echo "$0: cannot read '$media'" >&2; exit 1; }
# Both branches must get a stream, or the muxer would wait forever for the missing one.
streams=$(ffprobe -v error -show_entries stream=codec_type -of csv=p=0 "$media" 2>/dev/null) || streams=
for kind in video audio; do
  case "$streams" in
    *"$kind"*) ;;
    *) echo "$0: '$media' has no $kind stream (the demo needs sound and picture)" >&2; exit 1 ;;
  esac
done
mkdir -p "$out"

# Models: the shipped ones (models/*.md are their cards).
AUDIO_MODEL=${AUDIO_MODEL:-models/audio-events.safetensors}
VIDEO_MODEL=${VIDEO_MODEL:-models/video-actions.safetensors}
for m in "$AUDIO_MODEL" "$VIDEO_MODEL"; do
  [ -f "$m" ] || { echo "$0: no model file $m" >&2; exit 1; }
done
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$PWD/$build/plugin}"

# A black band below the picture for the audio timeline (nyoverlay draws it over
# the bottom quarter of the frame): 2/5 of the picture's height, rounded up to 8.
height=$(ffprobe -v error -select_streams v:0 -show_entries stream=height -of csv=p=0 "$media" \
  2>/dev/null | head -n 1) || height=
case "$height" in ''|*[!0-9]*) height=576 ;; esac
band=$(( (height * 2 / 5 + 7) / 8 * 8 ))

# With --show, a second branch of the tee goes to the screen.
display=
if [ "$show" = 1 ]; then
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    display="t. ! queue ! videoconvert ! autovideosink"
  else
    echo "WARNING: --show without \$DISPLAY or \$WAYLAND_DISPLAY: not showing" >&2
  fi
fi

step "running the pipeline on $media"
rm -f "$out/annotated.mp4" "$out/detections-audio.jsonl" "$out/detections-video.jsonl"
source=$(basename "$media")
t0=$(date +%s.%N)
# The pipeline. One decodebin, two branches into one mp4mux:
#  video: nyvideodetect (results on the frames) -> nymetaconvert -> a band for
#         the timeline (videobox) -> nyoverlay #1 draws the video actions' score
#         bars (top right) from the frames' meta -> nyoverlay #2 follows the
#         audio detector by name (detector=audio) and draws its top labels (top
#         left) and timeline (bottom) -> x264enc
#  audio: nyaudiodetect -> nymetaconvert -> AAC; the queue before the muxer
#         lets the audio run up to 3 s ahead of the picture, so its results are
#         ready when nyoverlay #2 draws the frame of the same time.
# x264enc tune=zerolatency: no lookahead, so the muxer (and the file sink's
# preroll) gets video at once; with lookahead, --show's sink would block the tee
# in PAUSED before x264enc had the 40 frames it wants, and nothing would start.
# Each nymetaconvert writes its own file, in time order; they are merged below
# (append=true would let them share one, lines in the order written). Swap
# `filesrc location=... ! decodebin name=d` for live sources as in README.md
# ("What the demo runs").
# shellcheck disable=SC2086  # $display is a list of words
gst-launch-1.0 -q -e \
  filesrc location="$media" ! decodebin name=d \
  d. ! queue ! videoconvert \
     ! nyvideodetect name=video model="$VIDEO_MODEL" \
     ! nymetaconvert location="$out/detections-video.jsonl" source="$source" \
     ! videobox bottom=-"$band" ! videoconvert \
     ! nyoverlay show-labels=false show-timeline=false \
     ! nyoverlay detector=audio show-bars=false \
     ! tee name=t \
  t. ! queue ! videoconvert ! x264enc threads=1 speed-preset=veryfast tune=zerolatency ! queue ! mux. \
  d. ! queue ! audioconvert ! audioresample \
     ! nyaudiodetect name=audio model="$AUDIO_MODEL" \
     ! nymetaconvert location="$out/detections-audio.jsonl" source="$source" \
     ! audioconvert ! avenc_aac ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000 \
     ! mux. \
  mp4mux name=mux ! filesink location="$out/annotated.mp4" \
  $display
t1=$(date +%s.%N)
duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$media" 2>/dev/null || echo 0)
awk -v a="$t0" -v b="$t1" -v d="$duration" 'BEGIN {
  printf "pipeline: %.1f s of media in %.1f s (%.1fx real time)\n", d, b - a, (b > a ? d / (b - a) : 0) }'

truth=$(dirname "$media")/demo-truth.json
if [ -f "$truth" ]; then
  step "timeline: truth (=) and detections (#) per class"
  set -- --truth "$truth"
else
  step "timeline: detections (#) per class"
  set --
fi
"$python" tools/timeline.py "$out/detections-audio.jsonl" "$out/detections-video.jsonl" \
  --merged "$out/detections.jsonl" "$@"
echo
echo "wrote $out/annotated.mp4 and $out/detections.jsonl ($(wc -l < "$out/detections.jsonl") results)"
