"""Scores a model file on a prepared split (models/data/prepare.py output) with the
C++ engine: nystream-infer runs every clip as one stream (the numbers the plugin
produces: tests/plugin checks the two equal token by token), then per-class AP,
mAP and onset latency over all clips (nystream_ref.evaluate; an event never spans
two clips).

  python3 -m nystream_ref.score --model M.safetensors --data DIR/validation \\
      --infer build/cli/nystream-infer [--recompute] [--output report.json]

--recompute scores the batch model over each window instead of the continual
state (nystream-infer --recompute): the batch Nystromformer / full transformer.
--manifest MEDIA/manifest.json adds mAP by condition, worst first, as a Markdown
table: audio_mixtures.py's (bed, reverb, EQ, the quietest event's SNR) or
video_actions.py's (each clip's `conditions`: actors, resolution, fps, codec,
background, held-out video / sprites, camera).
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from . import evaluate


def clip_bases(directory):
    return sorted(os.path.join(directory, f[:-len(".labels.csv")])
                  for f in os.listdir(directory) if f.endswith(".labels.csv"))


def infer_clip(infer, model, base, recompute, scratch):
    out = os.path.join(scratch, os.path.basename(base) + ".scores.csv")
    command = [infer, "--model", model, "--input", base + ".npy", "--output", out]
    if recompute:
        command.append("--recompute")
    subprocess.run(command, check=True)
    classes, tokens, labels = evaluate.read_labels(base + ".labels.csv")
    s_classes, s_tokens, scores = evaluate.read_scores(out)
    return classes, labels, evaluate.align(classes, tokens, s_classes, s_tokens, scores)


def evaluate_clips(results, threshold, hop_seconds):
    """evaluate.evaluate over the clips' (classes, labels, scores), concatenated."""
    labels = np.concatenate([r[1] for r in results])
    scores = np.concatenate([r[2] for r in results])
    starts = np.cumsum([0] + [len(r[1]) for r in results[:-1]])
    return evaluate.evaluate(results[0][0], labels, scores, threshold, hop_seconds, starts)


def clip_conditions(entry):
    """The conditions a clip was made under (its manifest entry): the `conditions` it
    lists (video_actions.py's; transcode_audio.py's rate, channels, codec, bitrate),
    and for an audio_mixtures.py clip its bed, reverb, EQ and quietest event's SNR."""
    conditions = [name.replace("held_out", "held-out").replace("_", " ") + " "
                  + (("yes" if value else "no") if isinstance(value, bool) else str(value))
                  for name, value in (entry.get("conditions") or {}).items()]
    if "bed" not in entry:
        return conditions
    events = entry.get("events", [])
    bed = os.path.splitext(entry["bed"]["kind"])[0]
    eqs = sorted({e["eq"]["eq"] for e in events if (e.get("eq") or {}).get("eq", "none") != "none"})
    snrs = [e["snr_db"] for e in events if e.get("snr_db") is not None]
    conditions += [f"bed {bed}", "reverb" if any((e.get("reverb") or {}).get("rt60") for e in events)
                   else "dry"] + ([f"EQ {eq}" for eq in eqs] or ["no EQ"])
    if snrs:
        low = min(snrs)
        conditions.append("quietest event SNR " + ("< 5 dB" if low < 5 else
                                                   "5-15 dB" if low < 15 else ">= 15 dB"))
    return conditions


def by_condition(bases, results, manifest, threshold, hop_seconds):
    """[(condition, clips, tokens, mAP, classes)], worst first; classes: how many
    classes have positives in the group (the mAP's mean is over those: a group of
    clips where no one acts has `none` only)."""
    entries = {c.get("name", c.get("clip")): c for c in manifest["clips"]}  # audio: name, video: clip
    groups = {}
    for base, result in zip(bases, results):
        for condition in clip_conditions(entries[os.path.basename(base)]):
            groups.setdefault(condition, []).append(result)
    rows = []
    for name, group in groups.items():
        report = evaluate_clips(group, threshold, hop_seconds)
        rows.append((name, len(group), sum(len(r[1]) for r in group), report["mAP"],
                     sum(c["ap"] is not None for c in report["per_class"].values())))
    return sorted(rows, key=lambda row: row[3])


def score(model, directory, infer, recompute=False, jobs=None, threshold=0.5, hop_seconds=0.1,
          manifest=None):
    bases = clip_bases(directory)
    if not bases:
        raise ValueError(f"{directory}: no clip_*.labels.csv (run models/data/prepare.py)")
    with tempfile.TemporaryDirectory() as scratch, \
            concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count()) as pool:
        results = list(pool.map(lambda b: infer_clip(infer, model, b, recompute, scratch), bases))
    report = evaluate_clips(results, threshold, hop_seconds)
    report.update(clips=len(bases), model=os.path.basename(model),
                  engine="nystream-infer" + (" --recompute" if recompute else ""))
    if manifest:
        report["by_condition"] = by_condition(bases, results, manifest, threshold, hop_seconds)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m nystream_ref.score",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="a prepared split directory")
    p.add_argument("--infer", required=True, help="the nystream-infer executable")
    p.add_argument("--recompute", action="store_true")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--hop-seconds", type=float, default=0.1)
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--output", default=None)
    p.add_argument("--manifest", default=None, help="the media's manifest.json: mAP by condition")
    args = p.parse_args(argv)
    manifest = None
    if args.manifest:
        with open(args.manifest) as f:
            manifest = json.load(f)
    report = score(args.model, args.data, args.infer, args.recompute, args.jobs, args.threshold,
                   args.hop_seconds, manifest)
    print(f"{report['model']} ({report['engine']}), {report['clips']} clips")
    print(evaluate.format_report(report))
    if manifest:
        print("\n| condition | clips | tokens | classes | mAP |\n|---|---|---|---|---|")
        for name, clips, tokens, m, classes in report["by_condition"]:
            print(f"| {name} | {clips} | {tokens} | {classes} | {m:.3f} |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
