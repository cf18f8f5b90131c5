#!/bin/sh
# The main job, end to end: install what is needed, build, make a short clip of
# speech and an alarm beep, and run it through a real GStreamer pipeline with
# nyaudiodetect and nymetaconvert, writing demo-out/detections.jsonl and
# printing a per-class timeline.
#
# Until trained models ship (issue 7), the model is the random-weight test model
# the build writes: the pipeline, timing and metadata are real, the labels are not.
set -e
cd "$(dirname "$0")/.."
./tools/install-deps.sh
[ -d build ] || meson setup build
ninja -C build

out=demo-out
mkdir -p "$out"
model=build/tests/plugin/audio-random.safetensors
espeak-ng -w "$out/speech.wav" "Nystream watches live media and says, frame by frame, what is happening."
gst-launch-1.0 -q audiotestsrc wave=square freq=2000 num-buffers=40 volume=0.3 \
  ! audio/x-raw,rate=22050,channels=1,format=S16LE ! wavenc ! filesink location="$out/beep.wav"
sox "$out/speech.wav" "$out/beep.wav" "$out/clip.wav"

# The pipeline (swap filesrc ... for `autoaudiosrc ! queue leaky=downstream` to
# listen to a microphone):
GST_PLUGIN_PATH="$PWD/build/plugin" gst-launch-1.0 -q \
  filesrc location="$out/clip.wav" ! decodebin ! audioconvert \
  ! nyaudiodetect model="$model" threshold=0.5 \
  ! nymetaconvert location="$out/detections.jsonl" ! fakesink sync=false

/usr/bin/python3 tools/timeline.py "$out/detections.jsonl"
echo "(random-weight test model: the labels are not meaningful until trained models ship)"
