#!/usr/bin/python3
"""Runs the demo's pipeline (tools/demo.sh --pipeline-only: both detectors, two
nyoverlays, nymetaconvert per branch, x264enc + AAC into one mp4, the merge and the
timeline) on a short clip with sound and picture, and checks what it wrote:

- annotated.mp4 has one H.264 video and one AAC audio stream, each about as long
  as the clip, the picture as wide as the clip's and taller (the timeline band);
- detections.jsonl holds the lines of both detectors (element names `audio` and
  `video`), in time order, as many as the two per-branch files together, about
  10 per second each;
- the printed timeline has a group per detector (and truth rows with a truth file).

The clip is tools/demo_media.py's (4 s, with demo-truth.json) when its sources are
already unpacked in the package cache (no network in tests), else a 4 s
videotestsrc + audiotestsrc file made with gst-launch-1.0.

    test_demo.py --demo tools/demo.sh [--python /usr/bin/python3] [--cache DIR]

Environment: NYSTREAM_TEST_MODELS (the build's random-weight models) and the
plugin on GST_PLUGIN_PATH, as tests/plugin's meson.build sets them. Exit 0 when
every check passed, 77 (skipped) when an encoder the demo needs is missing, 1
otherwise."""
import argparse
import glob
import json
import os
import sys
import tempfile

SECONDS = 4.0
from script_test import check, failures, has_element, run  # noqa: E402


def demo_sources_cached(cache):
    """True when tools/demo_media.py can run without fetching anything."""
    need = [glob.glob(os.path.join(cache, "x", "opencv-doc_*", "usr/share/doc/opencv-doc/examples/data/vtest.avi")),
            glob.glob(os.path.join(cache, "x", "tuxpaint-stamps-default_*", "usr/share/tuxpaint/stamps/people")),
            glob.glob(os.path.join(cache, "x", "openttd-openmsx", ".unpacked")),
            glob.glob("/usr/share/sounds/sf2/TimGM6mb.sf2")]
    tools = all(run(["sh", "-c", f"command -v {t}"])[0] == 0 for t in ("espeak-ng", "sox", "fluidsynth", "ffmpeg"))
    return tools and all(need)


def make_clip(tmp, args):
    """(path, truth path or None, how it was made)."""
    if args.python and demo_sources_cached(args.cache):
        media_py = os.path.join(os.path.dirname(os.path.abspath(args.demo)), "demo_media.py")
        code, _, err = run([args.python, media_py, "--out", tmp, "--seconds", str(SECONDS),
                            "--cache", args.cache])
        check("demo_media.py --seconds 4", code == 0, err.strip()[-500:])
        path = os.path.join(tmp, "demo.mkv")
        truth = os.path.join(tmp, "demo-truth.json")
        if code == 0 and os.path.exists(path):
            return path, truth, "tools/demo_media.py"
    print("SKIP demo_media.py: its sources are not in the package cache; using test sources")
    path = os.path.join(tmp, "clip.mkv")
    frames, blocks = int(SECONDS * 30), int(SECONDS * 44100 / 1024) + 1
    code, _, err = run(["gst-launch-1.0", "-q",
                        "videotestsrc", "pattern=ball", f"num-buffers={frames}", "!",
                        "video/x-raw,width=320,height=240,framerate=30/1", "!", "videoconvert", "!",
                        "x264enc", "threads=1", "speed-preset=ultrafast", "!", "matroskamux", "name=m", "!",
                        "filesink", f"location={path}",
                        "audiotestsrc", "wave=pink-noise", f"num-buffers={blocks}", "samplesperbuffer=1024", "!",
                        "audio/x-raw,rate=44100,channels=2", "!", "audioconvert", "!", "vorbisenc", "!", "m."])
    if code != 0:
        sys.exit(f"could not make the test clip: {err}")
    return path, None, "videotestsrc + audiotestsrc"


def probe(path):
    code, out, err = run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_type,codec_name,width,height,duration:format=duration",
                          "-of", "json", path])
    if code != 0:
        return None, err
    return json.loads(out), ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", required=True, help="tools/demo.sh")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/nystream/debs"))
    args = ap.parse_args()
    models = os.environ.get("NYSTREAM_TEST_MODELS", "")
    audio_model = os.path.join(models, "audio-random.safetensors")
    video_model = os.path.join(models, "video-random.safetensors")
    for m in (audio_model, video_model):
        if not os.path.exists(m):
            sys.exit(f"missing test model {m} (set NYSTREAM_TEST_MODELS)")
    missing = [e for e in ("x264enc", "avenc_aac", "mp4mux", "videobox", "vorbisenc", "matroskamux")
               if not has_element(e)]
    if missing:
        print(f"SKIP: the demo needs {', '.join(missing)} (tools/install-deps.sh installs them)")
        return 77

    with tempfile.TemporaryDirectory(prefix="nystream-demo-") as tmp:
        media, truth, how = make_clip(tmp, args)
        src, _ = probe(media)
        src_video = [s for s in src["streams"] if s["codec_type"] == "video"][0] if src else {}
        out = os.path.join(tmp, "out")
        env = dict(os.environ, DEMO_OUT=out, AUDIO_MODEL=audio_model, VIDEO_MODEL=video_model,
                   COLUMNS="100")
        code, stdout, stderr = run(["sh", args.demo, "--pipeline-only", media], env=env)
        check(f"demo.sh --pipeline-only ({how}) exits 0", code == 0,
              (stderr.strip()[-800:] + stdout.strip()[-400:]) if code else "")
        print(stdout)

        # annotated.mp4: sound and picture, of the clip's length
        info, err = probe(os.path.join(out, "annotated.mp4"))
        check("annotated.mp4 readable", info is not None, err.strip())
        if info:
            streams = info["streams"]
            video = [s for s in streams if s["codec_type"] == "video"]
            audio = [s for s in streams if s["codec_type"] == "audio"]
            check("annotated.mp4 has one H.264 and one AAC stream",
                  [s["codec_name"] for s in video] == ["h264"] and [s["codec_name"] for s in audio] == ["aac"],
                  ", ".join(f"{s['codec_type']} {s['codec_name']}" for s in streams))
            for kind, ss in (("video", video), ("audio", audio)):
                d = float(ss[0].get("duration", 0)) if ss else 0.0
                check(f"annotated.mp4 {kind} lasts the clip's {SECONDS:g} s", abs(d - SECONDS) <= 0.35,
                      f"{d:.3f} s")
            if video and src_video:
                check("annotated.mp4 picture: the clip's width, plus a band below",
                      video[0]["width"] == src_video["width"] and video[0]["height"] > src_video["height"],
                      f"{video[0]['width']}x{video[0]['height']} from {src_video['width']}x{src_video['height']}")

        # detections.jsonl: both detectors, merged in time order
        rows = []
        try:
            with open(os.path.join(out, "detections.jsonl")) as f:
                rows = [json.loads(line) for line in f if line.strip()]
            parts = sum(1 for k in ("audio", "video")
                        for line in open(os.path.join(out, f"detections-{k}.jsonl")) if line.strip())
        except (OSError, ValueError) as e:
            check("detections.jsonl is JSON lines", False, str(e))
            parts = -1
        by = {k: [r for r in rows if r.get("detector") == k] for k in ("audio", "video")}
        expected = SECONDS * 10 - 3  # 10 tokens/s, less the front ends' edges
        for k, rs in by.items():
            check(f"detections.jsonl has the {k} detector's lines", len(rs) >= expected
                  and all(r.get("schema", "").startswith("nystream-results/") and r["label"] in r["scores"]
                          for r in rs), f"{len(rs)} lines")
        check("detections.jsonl = both branches' files, in time order",
              len(rows) == parts and rows == sorted(rows, key=lambda r: r["start_timestamp"])
              and len(rows) == sum(len(v) for v in by.values()), f"{len(rows)} lines, {parts} in the parts")
        check("video lines carry the picture's size", all("resolution" in r for r in by["video"])
              and not any("resolution" in r for r in by["audio"]))

        # the timeline: a group per detector
        check("timeline shows audio and video", "audio: audio (" in stdout and "video: video (" in stdout)
        if truth:
            check("timeline shows the truth", stdout.count(" truth ") >= 10 and "IoU" in stdout)

    if failures:
        print(f"{len(failures)} failed: {', '.join(failures)}")
        return 1
    print("the demo pipeline wrote sound, picture and both detectors' results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
