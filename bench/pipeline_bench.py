#!/usr/bin/python3
"""Pipeline throughput of the detectors on files, sync=false (meson benchmark
'pipeline'; run with `meson test -C build --benchmark --suite pipeline -v`, which
passes the shipped models, models/audio-events.safetensors and
models/video-actions.safetensors).

    pipeline_bench.py --audio-model A.safetensors --video-model V.safetensors [--workdir DIR]

(a) audio: a generated 44.1 kHz stereo S16 WAV (default 60 s)
      filesrc ! decodebin ! audioconvert [! nyaudiodetect] ! fakesink sync=false
(b) video: a generated 640x480 30 fps file (default 20 s, VP8 in WebM; --video-codec
    raw for raw I420 in Matroska, no decoding)
      filesrc ! decodebin ! videoconvert [! nyvideodetect] ! fakesink sync=false

Each pipeline runs in its own gst-launch-1.0 process; wall time and the
process's CPU time (user + system, all threads, from wait4) are measured, the
median of --repeats runs. Reported:
  x real time (wall)  media seconds per wall second, on whatever cores it got
  streams per core    media seconds per CPU second: how many real-time streams
                      of this pipeline one core sustains
  detector alone      media seconds per CPU second the detector adds (with minus
                      without): its own cost, feature extraction included
Before timing, each model is described (architecture and the feature extractor
with its parameters, as the file gives them to the element) and checked: the short
file through the detector and nymetaconvert must give results named for the model.
Fixed per-process costs (GStreamer init, plugin and model loading) are removed
by also running a file of 1/4 the length and using the difference ("marginal").
Targets: audio >= 100 streams per core, 640x480 30 fps video >= 10 streams per
core. Exit status 0 unless a pipeline fails (missing a target is reported, not
fatal: a benchmark measures, the issue judges).
"""
import argparse
import json
import os
import struct
import statistics
import subprocess
import sys
import tempfile
import time


def launch(args, check=True):
    """Runs gst-launch-1.0 with args; returns (wall s, cpu s)."""
    start = time.monotonic()
    proc = subprocess.Popen(["gst-launch-1.0", "-q"] + args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if check and proc.returncode != 0:
        sys.exit(f"pipeline failed ({proc.returncode}): gst-launch-1.0 {' '.join(args)}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime


def make_audio(path, seconds):
    if os.path.exists(path):
        return
    print(f"writing {path} ({seconds} s)", flush=True)
    launch(f"audiotestsrc wave=pink-noise samplesperbuffer=4410 num-buffers={seconds * 10} "
           "! audio/x-raw,rate=44100,channels=2,format=S16LE ! wavenc ! filesink".split()
           + [f"location={path}.part"])
    os.replace(path + ".part", path)


def make_video(path, seconds, codec):
    if os.path.exists(path):
        return
    print(f"writing {path} ({seconds} s, {codec})", flush=True)
    enc = "vp8enc deadline=1 target-bitrate=2000000 ! webmmux" if codec == "vp8" else "matroskamux"
    # pattern=ball: a moving object, so motion search finds motion.
    launch(f"videotestsrc pattern=ball num-buffers={seconds * 30} "
           "! video/x-raw,width=640,height=480,framerate=30/1,format=I420 "
           f"! {enc} ! filesink".split() + [f"location={path}.part"])
    os.replace(path + ".part", path)


def measure(description, path, repeats):
    """Median (wall, cpu) of repeats runs of description on path."""
    runs = [launch(["filesrc", f"location={path}", "!"] + description.split())
            for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def model_metadata(path):
    """The "nystream" metadata of a safetensors model file (docs/model-format.md)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return json.loads(header["__metadata__"]["nystream"])


def check_model(kind, element, model, path, seconds, workdir):
    """Describes model and runs path through element into JSON lines; exits
    unless results named for the model come out."""
    meta = model_metadata(model)
    arch, features = meta["architecture"], meta["features"]
    blocks = arch.get("blocks", 1)
    assembly = "1 block" if blocks == 1 else f"{arch.get('assembly', 'retroactive')} {blocks} blocks"
    print(f"{kind} model {model}: {meta['name']}, {assembly}, n={arch['window']} "
          f"m={arch.get('landmarks')} E={arch['embed_dim']} F={arch['ff_dim']}, "
          f"features {features['extractor']} v{features['version']} "
          f"{json.dumps(features.get('params', {}))}")
    out = os.path.join(workdir, f"check-{kind}.jsonl")
    launch(["filesrc", f"location={path}", "!"] +
           f"decodebin ! {kind}convert ! {element} model={model} ! nymetaconvert".split() +
           [f"location={out}", "!", "fakesink", "sync=false"])
    with open(out) as f:
        results = [json.loads(line) for line in f if line.strip()]
    named = sum(r.get("model") == meta["name"] for r in results)
    if not results or named != len(results):
        sys.exit(f"{element} with {model}: {len(results)} results, {named} named {meta['name']}")
    print(f"  check: {len(results)} results from a {seconds} s file "
          f"({len(results) / seconds:.1f} per media second)", flush=True)


def report(title, media, files, without, with_detector, repeats, target):
    """files: {seconds: path}; without / with_detector: descriptions after filesrc."""
    long_s, short_s = max(files), min(files)
    print(f"\n{title}: {long_s} s file (marginal over a {short_s} s file), "
          f"median of {repeats} runs")
    print(f"  {'pipeline':<26}{'wall s':>8}{'cpu s':>8}{'x real time':>13}"
          f"{'streams/core':>14}{'marginal streams/core':>23}")
    results = {}
    for name, description in (("without detector", without), (f"with {media}", with_detector)):
        wall_l, cpu_l = measure(description, files[long_s], repeats)
        wall_s, cpu_s = measure(description, files[short_s], repeats)
        marginal_cpu = max(cpu_l - cpu_s, 1e-9) / (long_s - short_s)  # CPU s per media s
        results[name] = (cpu_l, marginal_cpu)
        print(f"  {name:<26}{wall_l:8.3f}{cpu_l:8.3f}{long_s / wall_l:13.1f}"
              f"{long_s / cpu_l:14.1f}{1 / marginal_cpu:23.1f}")
    (cpu_without, m_without), (cpu_with, m_with) = results.values()
    own = max(m_with - m_without, 1e-9)
    print(f"  {media + ' alone':<26}{'':8}{cpu_with - cpu_without:8.3f}{'':13}"
          f"{long_s / max(cpu_with - cpu_without, 1e-9):14.1f}{1 / own:23.1f}")
    print(f"  the detector's share of the pipeline's CPU: {100 * own / m_with:.0f} %; "
          f"CPU per media second: {1e3 * own:.2f} ms (detector), {1e3 * m_with:.2f} ms (pipeline)")
    verdict = "meets" if 1 / m_with >= target else "BELOW"
    print(f"  target >= {target} streams per core (whole pipeline, marginal): {verdict} "
          f"({1 / m_with:.1f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio-model", required=True)
    parser.add_argument("--video-model", required=True)
    parser.add_argument("--workdir", help="where the generated files are kept (reused)")
    parser.add_argument("--audio-seconds", type=int, default=60)
    parser.add_argument("--video-seconds", type=int, default=20)
    parser.add_argument("--video-codec", choices=("vp8", "raw"), default="vp8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("audio", "video"))
    args = parser.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix="nystream-pipeline-bench-")
    os.makedirs(workdir, exist_ok=True)
    print(f"nystream pipeline benchmark: {os.cpu_count()} CPUs visible, files in {workdir}")
    if args.only != "video":
        files = {}
        for seconds in (args.audio_seconds, max(args.audio_seconds // 4, 1)):
            files[seconds] = os.path.join(workdir, f"audio-44100-stereo-{seconds}s.wav")
            make_audio(files[seconds], seconds)
        short = min(files)
        check_model("audio", "nyaudiodetect", args.audio_model, files[short], short, workdir)
        base = "decodebin ! audioconvert"
        report("audio 44.1 kHz stereo WAV", "nyaudiodetect", files,
               f"{base} ! fakesink sync=false",
               f"{base} ! nyaudiodetect model={args.audio_model} ! fakesink sync=false",
               args.repeats, 100)
    if args.only != "audio":
        files = {}
        ext = "webm" if args.video_codec == "vp8" else "mkv"
        for seconds in (args.video_seconds, max(args.video_seconds // 4, 1)):
            files[seconds] = os.path.join(workdir, f"video-640x480-30fps-{seconds}s.{ext}")
            make_video(files[seconds], seconds, args.video_codec)
        short = min(files)
        check_model("video", "nyvideodetect", args.video_model, files[short], short, workdir)
        base = "decodebin ! videoconvert"
        report(f"video 640x480 30 fps ({args.video_codec})", "nyvideodetect", files,
               f"{base} ! fakesink sync=false",
               f"{base} ! nyvideodetect model={args.video_model} ! fakesink sync=false",
               args.repeats, 10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
