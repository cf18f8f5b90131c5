"""The shipped models, re-scored: generates a small validation set from the held-out
sources with the data generators (seeded, so the same clips on every bookworm
machine), extracts features with each model's own front end (nystream-features
--model), scores it with the C++ engine (nystream-infer, the numbers the plugin
gives) and fails if a model's mAP is more than 0.02 below the value its model card
quotes (models/<name>.ci.json), and checks that each model's stream (fixed
landmarks) gives the batch model's logits over every window of those clips. Then a
training smoke test on the generated audio features: a few steps of
nystream_ref.train lower the loss, and the export runs in the engine.

The generators fetch Debian packages into ~/.cache/nystream/debs on first use
(network), then work offline.

  test_shipped_models.py SOURCE_ROOT BUILD_ROOT WORK [--write]

--write records the current mAPs as the card values (after retraining).
"""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np

SOURCE, BUILD, WORK = sys.argv[1:4]
sys.path.insert(0, os.path.join(SOURCE, "models"))
from nystream_ref import evaluate, score  # noqa: E402

WRITE = "--write" in sys.argv[4:]
PYTHON = "/usr/bin/python3"
FEATURES = os.path.join(BUILD, "cli", "nystream-features")
INFER = os.path.join(BUILD, "cli", "nystream-infer")
TOLERANCE = 0.02
# Stream vs batch logits: float32 sums in another order, as tests/core allows.
LOGIT_TOLERANCE = 2e-4

# model, generator and its arguments: only validation sources (fraction 1).
SETS = [
    ("audio-events", "audio", "audio_mixtures.py",
     ["--clips", "8", "--val-clip-fraction", "1", "--seed", "1"]),
    ("video-actions", "video", "video_actions.py",
     ["--clips", "6", "--val-fraction", "1", "--seed", "7"]),
]

failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def run(command, **kwargs):
    print("+ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def rescore(name, modality, generator, arguments):
    model = os.path.join(SOURCE, "models", name + ".safetensors")
    media = os.path.join(WORK, modality, "media")
    script = os.path.join(SOURCE, "models", "data", generator)
    # The set is remade when the arguments or the generator change.
    made = {"arguments": arguments,
            "generator_sha256": hashlib.sha256(open(script, "rb").read()).hexdigest()}
    stamp = os.path.join(media, "made.json")
    if not os.path.exists(stamp) or json.load(open(stamp)) != made:
        shutil.rmtree(media, ignore_errors=True)
        run([PYTHON, script, "--out", media] + arguments)
        with open(stamp, "w") as f:
            json.dump(made, f)
    features = os.path.join(WORK, modality, "features")
    run([PYTHON, os.path.join(SOURCE, "models", "data", "prepare.py"), "--data", media,
         "--modality", modality, "--features", FEATURES, "--model", model, "--out", features,
         "--splits", "validation"])
    report = score.score(model, os.path.join(features, "validation"), INFER)
    card_path = os.path.join(SOURCE, "models", name + ".ci.json")
    mine = {"mAP": report["mAP"], "clips": report["clips"], "tokens": report["frames"],
            "generator": generator, "arguments": arguments,
            "generator_sha256": made["generator_sha256"],
            "per_class_ap": {c: r["ap"] for c, r in report["per_class"].items()}}
    if WRITE:
        with open(card_path, "w") as f:
            json.dump(mine, f, indent=2)
            f.write("\n")
    card = json.load(open(card_path))
    check(card["arguments"] == arguments and card["generator_sha256"] == made["generator_sha256"],
          f"{name}: the card's set is this set ({generator} {' '.join(arguments)}, "
          f"generator sha256 {made['generator_sha256'][:12]})")
    check(report["mAP"] >= card["mAP"] - TOLERANCE,
          f"{name}: mAP {report['mAP']:.4f} on {report['clips']} clips, {report['frames']} tokens "
          f"(card {card['mAP']:.4f}, tolerance {TOLERANCE})")
    return features


def logits(model, npy, *flags):
    out = os.path.join(WORK, "logits.csv")
    subprocess.run([INFER, "--model", model, "--input", npy, "--logits", "--output", out] +
                   list(flags), check=True)
    return evaluate.read_scores(out)[2]  # a non-finite step is -inf


def stream_equals_batch(name, features):
    """Every token of every clip: the stepped stream against --recompute (the batch
    model over the window): what the card's numbers rest on."""
    model = os.path.join(SOURCE, "models", name + ".safetensors")
    worst, tokens = 0.0, 0
    for npy in sorted(glob.glob(os.path.join(features, "validation", "*.npy"))):
        stream, batch = logits(model, npy), logits(model, npy, "--recompute")
        worst = float(np.maximum(worst, np.abs(stream - batch).max()))  # NaN stays NaN: fails
        tokens += len(stream)
    check(tokens > 0 and worst <= LOGIT_TOLERANCE,
          f"{name}: stream = batch model over each window, {tokens} tokens, "
          f"largest logit difference {worst:.2e} (tolerance {LOGIT_TOLERANCE})")


def training_smoke(features):
    data = sorted(glob.glob(os.path.join(features, "validation", "*.npz")))
    out = os.path.join(WORK, "smoke")
    os.makedirs(out, exist_ok=True)
    summary, model = os.path.join(out, "summary.json"), os.path.join(out, "smoke.safetensors")
    dims = np.load(data[0])["features"].shape[1]
    run([PYTHON, "-m", "nystream_ref.train", "--data"] + data +
        ["--window", "16", "--landmarks", "4", "--input-dim", str(dims), "--embed-dim", "32",
         "--heads", "2", "--ff-dim", "64", "--steps", "60", "--batch", "32", "--lr", "3e-3",
         "--extractor", "log-mel", "--modality", "audio", "--summary", summary, "--out", model],
        cwd=os.path.join(SOURCE, "models"), env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    s = json.load(open(summary))
    check(s["loss_last10"] < 0.8 * s["loss_first10"],
          f"training smoke: loss {s['loss_first10']:.3f} -> {s['loss_last10']:.3f}")
    scores = os.path.join(out, "scores.csv")
    run([INFER, "--model", model, "--input", data[0].replace(".npz", ".npy"), "--output", scores])
    rows = open(scores).read().splitlines()
    check(len(rows) > 10 and all(",ok," in r for r in rows[1:]),
          f"training smoke: the export runs in the engine ({len(rows) - 1} tokens)")


def main():
    os.environ["PYTHONPATH"] = os.path.join(SOURCE, "models")
    features = {}
    for name, modality, generator, arguments in SETS:
        features[modality] = rescore(name, modality, generator, arguments)
        stream_equals_batch(name, features[modality])
    training_smoke(features["audio"])
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
