#!/usr/bin/python3
"""nystream-features end to end: help, clear errors on bad input, model files,
video and audio from FFmpeg-made media, documented resets on format changes.

Usage: test_cli.py NYSTREAM_FEATURES WORK_DIR
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np

TOOL, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
failures = []


def w(name):
    return os.path.join(WORK, name)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True)


def check(condition, what, detail=""):
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        failures.append(what)
        if detail:
            print("      " + detail.replace("\n", "\n      "))


def fails_with(args, words, what):
    r = tool(*args)
    check(r.returncode == 1 and all(x in r.stderr for x in words) and "Traceback" not in r.stderr,
          what, f"rc={r.returncode} stderr={r.stderr!r}")


def times(path):
    rows = [line.split(",") for line in open(path).read().split("\n")[1:] if line]
    return np.array([[int(v) for v in row] for row in rows], dtype=np.int64)


def model_file(path, features):
    """A safetensors file with only the metadata (the tool reads nothing else)."""
    meta = {"format": "nystream-model", "format_version": 1, "features": features}
    header = json.dumps({"__metadata__": {"nystream": json.dumps(meta)}}).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)


# Media made here from FFmpeg's generators.
ffmpeg("-f", "lavfi", "-i", "sine=f=440:r=44100:d=2.5", "-ac", "2", w("tone.wav"))
ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "3", "-pix_fmt", "yuv420p", w("video25.mp4"))
ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=50", "-t", "3", "-pix_fmt", "yuv420p", w("video50.mp4"))

r = tool("--help")
check(r.returncode == 0 and "Usage: nystream-features" in r.stdout, "--help prints the usage")
fails_with([], ["no input file"], "no arguments")
fails_with([w("tone.wav"), "-e", "log-mel"], ["no output file"], "no output")
fails_with([w("tone.wav"), "-o", w("x.npy")], ["no extractor"], "no extractor")
fails_with([w("tone.wav"), "-e", "mfcc", "-o", w("x.npy")], ["unknown extractor 'mfcc'"], "unknown extractor")
fails_with([w("tone.wav"), "--frobnicate"], ["unknown option --frobnicate"], "unknown option")
fails_with([w("missing.wav"), "-e", "log-mel", "-o", w("x.npy")], ["cannot open", "missing.wav"], "missing file")
with open(w("junk.bin"), "wb") as f:
    f.write(os.urandom(5000))
fails_with([w("junk.bin"), "-e", "log-mel", "-o", w("x.npy")], ["junk.bin"], "undecodable file")
data = open(w("video25.mp4"), "rb").read()
with open(w("truncated.mp4"), "wb") as f:
    f.write(data[: len(data) // 2])
r = tool(w("truncated.mp4"), "-e", "video-motion", "-o", w("x.npy"))
check(r.returncode in (0, 1) and "truncated.mp4" in r.stderr and "Traceback" not in r.stderr,
      "truncated mp4: an error or a warning naming the file", r.stderr)
fails_with([w("tone.wav"), "-e", "video-motion", "-o", w("x.npy")], ["no video stream"], "audio file, video extractor")
fails_with([w("tone.wav"), "-e", "log-mel", "-p", '{"n_mels": "many"}', "-o", w("x.npy")],
           ["'n_mels' must be an integer"], "bad params")
ffmpeg("-f", "lavfi", "-i", "sine=f=440:r=16000:d=0.05", w("short.wav"))
fails_with([w("short.wav"), "-e", "log-mel", "-o", w("x.npy")], ["no complete token"], "shorter than a token")
model_file(w("bad_version.safetensors"), {"extractor": "log-mel", "version": 7, "params": {}})
fails_with([w("tone.wav"), "-m", w("bad_version.safetensors"), "-o", w("x.npy")], ["version 7"], "unknown version")
with open(w("not_a_model.safetensors"), "wb") as f:
    f.write(b"\xff" * 16)
fails_with([w("tone.wav"), "-m", w("not_a_model.safetensors"), "-o", w("x.npy")], ["not_a_model"], "not a model")

# Audio: 2.5 s of 44.1 kHz stereo -> 25 tokens of 128 (mean-std of 64 bands), 100 ms apart.
r = tool(w("tone.wav"), "-e", "log-mel", "-o", w("tone.npy"))
tokens, spans = np.load(w("tone.npy")), times(w("tone.times.csv"))
check(r.returncode == 0 and tokens.shape == (25, 128) and tokens.dtype == np.float32, f"audio tokens {tokens.shape}")
check((spans[:, 1] == np.arange(25) * 100_000_000).all() and (spans[:, 2] - spans[:, 1] == 100_000_000).all(),
      "audio spans are 100 ms apart from 0")
band = int(np.argmax(tokens[5, :64]))
check(8 <= band <= 16, f"440 Hz lands in mel band {band}")

# The model file's features object configures the extractor.
model_file(w("flat.safetensors"), {"extractor": "log-mel", "version": 1, "params": {"pooling": "flatten", "n_mels": 40}})
r = tool(w("tone.wav"), "-m", w("flat.safetensors"), "-o", w("flat.npy"), "-t", w("flat.csv"))
check(r.returncode == 0 and np.load(w("flat.npy")).shape == (25, 400) and os.path.exists(w("flat.csv")),
      "model file params (flatten, 40 bands) give 400 dims", r.stderr)

# Video: 3 s at 25 and 50 fps -> 30 tokens each at the same times.
r25 = tool(w("video25.mp4"), "-e", "video-motion", "-o", w("v25.npy"))
r50 = tool(w("video50.mp4"), "-e", "video-motion", "-o", w("v50.npy"))
v25, v50 = np.load(w("v25.npy")), np.load(w("v50.npy"))
check(r25.returncode == 0 and v25.shape == (30, 352), f"video tokens {v25.shape}", r25.stderr)
check(v50.shape == v25.shape and (times(w("v25.times.csv")) == times(w("v50.times.csv"))).all(),
      "25 and 50 fps give tokens at the same times")
check(np.isfinite(v25).all() and np.abs(v25[1:, 192:]).max() > 0, "video motion features are finite and non-zero")

# Format changes mid-stream: documented resets, said on stderr.
ffmpeg("-f", "lavfi", "-i", "sine=f=440:r=44100:d=1.5", "-ac", "2", w("a.mp3"))
ffmpeg("-f", "lavfi", "-i", "sine=f=660:r=22050:d=1.5", w("b.mp3"))
open(w("ab.mp3"), "wb").write(open(w("a.mp3"), "rb").read() + open(w("b.mp3"), "rb").read())
r = tool(w("ab.mp3"), "-e", "log-mel", "-o", w("ab.npy"))
check(r.returncode == 0 and "changed" in r.stderr and "reset" in r.stderr, "audio rate change: reset, warned", r.stderr)
ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "1", "-c:v", "mpeg2video", w("a.ts"))
ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "1", "-c:v", "mpeg2video", w("b.ts"))
open(w("ab.ts"), "wb").write(open(w("a.ts"), "rb").read() + open(w("b.ts"), "rb").read())
r = tool(w("ab.ts"), "-e", "video-motion", "-o", w("abv.npy"))
check(r.returncode == 0 and "size or format changed" in r.stderr, "video size change: reset, warned", r.stderr)

# Samples of 1e30 make Inf features: written (the element treats them as padding
# too), but the tool says so, naming the first such token.
samples = np.full(16000, 1e30, np.float32)
samples[:8000] = 0.1 * np.sin(np.arange(8000) * 0.2)
samples.tofile(w("huge.f32"))
ffmpeg("-f", "f32le", "-ar", "16000", "-ac", "1", "-i", w("huge.f32"), "-c:a", "pcm_f32le", w("huge.wav"))
r = tool("-q", "-e", "log-mel", w("huge.wav"), "-o", w("huge.npy"))
huge = np.load(w("huge.npy")) if r.returncode == 0 else np.zeros((0, 0))
bad = ~np.isfinite(huge).all(axis=1)
check(r.returncode == 0 and bad.any() and "hold NaN or Inf features" in r.stderr
      and f"first: token {int(np.argmax(bad))}," in r.stderr,
      "samples of 1e30: non-finite features are reported on stderr", r.stderr)

print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
