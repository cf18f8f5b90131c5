#!/usr/bin/python3
"""Runs every example of examples/ on generated files and checks each produced
results: examples/pipelines.sh (JSON lines from nymetaconvert; the mic and
camera lines with test sources in place of autoaudiosrc/v4l2src; the nyoverlay
lines), nystream-meta-probe (printed metas) and
read_results.py (bus messages and custom metas).

    test_examples.py --examples DIR --meta-probe EXE [--python PYTHON_WITH_GI]

Environment: NYSTREAM_TEST_MODELS (the build's random-weight models) and the
plugin on GST_PLUGIN_PATH, as tests/plugin's meson.build sets them. Exit 0 when
every check passed, 1 otherwise: a missing part (an element, PyGObject) fails."""
import argparse
import json
import os
import re
import sys
import tempfile

from script_test import check, failures, has_element, run


def gst_launch(description, *extra):
    """Runs description (split on spaces) followed by the extra arguments, each
    escaped by gst-launch-1.0 on its own (so "location=a path" may hold spaces)."""
    code, _, err = run(["gst-launch-1.0", "-q"] + description.split() + list(extra))
    if code != 0:
        sys.exit(f"could not generate a test file with: {description} {extra}\n{err}")


def make_files(tmp):
    """A 3 s 44.1 kHz stereo WAV, a 3 s 320x240 30 fps video and a file with both
    (VP8/Vorbis WebM when the encoders exist, else raw in Matroska)."""
    audio = os.path.join(tmp, "tone and noise.wav")  # a space: quoting is tested too
    gst_launch("audiotestsrc wave=pink-noise num-buffers=130 samplesperbuffer=1024 "
               "! audio/x-raw,rate=44100,channels=2,format=S16LE "
               "! wavenc ! filesink", f"location={audio}")
    compressed = has_element("vp8enc") and has_element("vorbisenc") and has_element("webmmux")
    ext = "webm" if compressed else "mkv"
    venc = "vp8enc deadline=1" if compressed else "identity"
    aenc = "audioconvert ! vorbisenc" if compressed else "identity"
    mux = "webmmux" if compressed else "matroskamux"
    video = os.path.join(tmp, f"ball.{ext}")
    vsrc = ("videotestsrc pattern=ball num-buffers=90 "
            "! video/x-raw,width=320,height=240,framerate=30/1,format=I420")
    gst_launch(f"{vsrc} ! {venc} ! {mux} ! filesink location={video}")
    both = os.path.join(tmp, f"both.{ext}")
    gst_launch(f"{vsrc} ! {venc} ! {mux} name=m ! filesink location={both} "
               "audiotestsrc num-buffers=130 samplesperbuffer=1024 "
               f"! audio/x-raw,rate=44100,channels=2 ! {aenc} ! m.")
    return audio, video, both


def json_lines(path):
    lines = []
    with open(path) as f:
        for line in f:
            lines.append(json.loads(line))
    return lines


def check_json(name, path, min_lines, detector):
    try:
        lines = json_lines(path)
    except (OSError, ValueError) as e:
        check(name, False, f"results not JSON lines: {e}")
        return 0
    good = [r for r in lines if r.get("schema", "").startswith("nystream-results/")
            and r.get("detector", "").startswith(detector) and "label" in r
            and 0.0 <= r.get("confidence", -1) <= 1.0 and r["end_timestamp"] > r["start_timestamp"]]
    check(name, len(lines) >= min_lines and len(good) == len(lines),
          f"{len(lines)} JSON lines ({len(good)} well-formed), first label "
          f"{lines[0]['label'] if lines else None}")
    return len(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", required=True)
    parser.add_argument("--meta-probe", required=True)
    parser.add_argument("--python", default="")
    args = parser.parse_args()
    models = os.environ.get("NYSTREAM_TEST_MODELS", "")
    audio_model = os.path.join(models, "audio-random.safetensors")
    video_model = os.path.join(models, "video-random.safetensors")
    for m in (audio_model, video_model):
        if not os.path.exists(m):
            sys.exit(f"missing test model {m} (set NYSTREAM_TEST_MODELS)")
    script = os.path.join(args.examples, "pipelines.sh")
    overlay = has_element("nyoverlay")

    with tempfile.TemporaryDirectory(prefix="nystream-examples-") as tmp:
        audio, video, both = make_files(tmp)
        # 3 s at 10 tokens/s: about 30 results per file (the last one or two
        # complete only at EOS and come in the nystream-final-results event).
        expected = {"audio": 25, "video": 25}

        # --- examples/pipelines.sh ---
        code, out, err = run(["sh", script, "list"])
        check("pipelines.sh list", code == 0 and all(
            f"# {n}\n" in out for n in ("audio-file", "video-file", "mic", "camera")),
            err.strip())
        base_env = dict(os.environ, AUDIO_MODEL=audio_model, VIDEO_MODEL=video_model,
                        VIDEO_SINK="fakesink sync=false", AUDIO_SINK="fakesink sync=false")
        file_counts = {}
        for name, kind, media in (("audio-file", "audio", audio), ("video-file", "video", video)):
            results = os.path.join(tmp, f"{name}.jsonl")
            code, _, err = run(["sh", script, name, media], env=dict(base_env, RESULTS=results))
            check(f"pipelines.sh {name} exits 0", code == 0, err.strip()[-500:])
            file_counts[kind] = check_json(f"pipelines.sh {name} results", results,
                                           expected[kind], f"ny{kind}detect")
        # The same file lines with stdout as the results file (the default).
        code, out, err = run(["sh", script, "audio-file", audio], env=base_env)
        check("pipelines.sh audio-file to stdout", code == 0 and
              len([line for line in out.splitlines() if line.startswith("{")]) == file_counts["audio"],
              f"{len(out.splitlines())} lines")

        # Live lines, with live test sources in place of the devices: everything
        # after the source (leaky queue, detector, converter) is what ships.
        live = {
            "mic": dict(AUDIO_SOURCE="audiotestsrc is-live=true num-buffers=60"),
            "camera": dict(CAMERA_SOURCE="videotestsrc is-live=true num-buffers=45 "
                           "! video/x-raw,width=320,height=240,framerate=30/1"),
        }
        for name, env in live.items():
            results = os.path.join(tmp, f"{name}.jsonl")
            code, _, err = run(["sh", script, name], env=dict(base_env, RESULTS=results, **env))
            check(f"pipelines.sh {name} (test source) exits 0", code == 0, err.strip()[-500:])
            check_json(f"pipelines.sh {name} results", results, 5,
                       "nyaudiodetect" if name == "mic" else "nyvideodetect")

        for name, media in (("video-overlay", video), ("av-overlay", both)):
            code, _, err = run(["sh", script, name, media], env=base_env)
            check(f"pipelines.sh {name} exits 0 (nyoverlay {'found' if overlay else 'MISSING'})",
                  overlay and code == 0, err.strip()[-500:])

        # --- nystream-meta-probe (C, pad probe) ---
        line_re = re.compile(r"^(ny(audio|video)detect\d*) token (\d+) label (\S+) \(id (\d+)\) "
                             r"confidence ([0-9.]+) span (\S+) - (\S+) on buffer")
        for kind, extra, model, media in (("audio", [], audio_model, audio),
                                          ("video", ["--video"], video_model, video)):
            code, out, err = run([args.meta_probe] + extra + [model, media])
            matches = [line_re.match(line) for line in out.splitlines()]
            good = [m for m in matches if m and m.group(2) == kind]
            tokens = [int(m.group(3)) for m in good]
            check(f"meta-probe {kind} file", code == 0 and len(good) == len(matches)
                  and len(good) == file_counts.get(kind, -1)
                  and tokens == sorted(tokens) and len(set(tokens)) == len(tokens),
                  f"{len(good)} metas printed, nymetaconvert wrote {file_counts.get(kind)}"
                  + (f"; {err.strip()[-300:]}" if code else ""))
        code, out, err = run([args.meta_probe, "--pipeline",
                              "audiotestsrc num-buffers=50 ! audio/x-raw,rate=16000 "
                              f"! nyaudiodetect model={audio_model} ! fakesink"])
        check("meta-probe --pipeline", code == 0 and len(out.splitlines()) >= 5,
              f"{len(out.splitlines())} metas")
        code, _, _ = run([args.meta_probe, "--pipeline", "fakesrc num-buffers=1 ! fakesink"])
        check("meta-probe without a detector fails", code == 1)

        # --- read_results.py (PyGObject: bus messages and the custom meta) ---
        if not args.python or run([args.python, "-c", "import gi"])[0] != 0:
            check("read_results.py: a Python with PyGObject (python3-gi, tools/install-deps.sh)",
                  False, args.python or "none given")
        else:
            reader = os.path.join(args.examples, "read_results.py")
            for kind, extra, model, media in (("audio", [], audio_model, audio),
                                              ("video", ["--video"], video_model, video)):
                code, out, err = run([args.python, reader] + extra + [model, media])
                lines = out.splitlines()
                metas = [line for line in lines if line.startswith("meta ")]
                messages = [line for line in lines if line.startswith("message ")]
                # Every result is posted and written by nymetaconvert; each
                # buffer's first result is a custom meta (one result per buffer
                # here), those completed at EOS on the final-results event's carrier.
                check(f"read_results.py {kind} file", code == 0
                      and len(metas) == file_counts.get(kind, -1)
                      and len(messages) == file_counts.get(kind, -1)
                      and len(metas) + len(messages) == len(lines)
                      and all(f"ny{kind}detect" in line for line in lines),
                      f"{len(messages)} messages, {len(metas)} custom metas"
                      + (f"; {err.strip()[-300:]}" if code else ""))

    if failures:
        print(f"{len(failures)} failed: {', '.join(failures)}")
        return 1
    print("all examples produced results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
