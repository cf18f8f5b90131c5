#!/usr/bin/python3
"""Soak test (issue 22): each shipped model streamed for 10^7 steps over real
features, checked against the batch model (soak-models, soak_models.cc).

    soak_models.py SOURCE_ROOT SOAK_MODELS_EXE NYSTREAM_FEATURES_EXE WORK

Media: tools/demo_media.py's clip (vtest.avi pedestrians with a walking, waving,
jumping, falling actor; speech, music, an alarm over noise), made once into
WORK/media at --seconds 60 --seed 7 (remade when the generator changes); its
sources come from the Debian package cache of models/data (network on first use).
Features: nystream-features --model of each model, its own front end (600
tokens per model). Each model is then streamed for $NYSTREAM_SOAK_STEPS steps
(default 10^7) over those tokens replayed in varied order and scale, with
$NYSTREAM_SOAK_CHECKS (default 1000) checks of 16 consecutive steps.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

SOURCE, SOAK, FEATURES, WORK = sys.argv[1:5]
PYTHON = "/usr/bin/python3"
STEPS = os.environ.get("NYSTREAM_SOAK_STEPS", "10000000")
CHECKS = os.environ.get("NYSTREAM_SOAK_CHECKS", "1000")
MEDIA_ARGS = ["--seconds", "60", "--seed", "7"]
MODELS = ["audio-events", "video-actions"]


def run(command):
    print("+ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def media():
    out = os.path.join(WORK, "media")
    script = os.path.join(SOURCE, "tools", "demo_media.py")
    made = {"arguments": MEDIA_ARGS,
            "generator_sha256": hashlib.sha256(open(script, "rb").read()).hexdigest()}
    stamp = os.path.join(out, "made.json")
    clip = os.path.join(out, "demo.mkv")
    if not os.path.exists(stamp) or json.load(open(stamp)) != made:
        os.makedirs(out, exist_ok=True)
        run([PYTHON, script, "--out", out] + MEDIA_ARGS)
        with open(stamp, "w") as f:
            json.dump(made, f)
    return clip


def main():
    clip = media()
    failed = []
    for name in MODELS:
        model = os.path.join(SOURCE, "models", name + ".safetensors")
        tokens = os.path.join(WORK, name + ".npy")
        run([FEATURES, "--model", model, clip, "-o", tokens])
        start = time.monotonic()
        code = subprocess.run([SOAK, "--model", model, "--features", tokens, "--steps", STEPS,
                               "--checks", CHECKS]).returncode
        print(f"{name}: soak-models exit {code}, {time.monotonic() - start:.0f} s wall", flush=True)
        if code != 0:
            failed.append(name)
    print(f"{len(failed)} failures" + (": " + ", ".join(failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
