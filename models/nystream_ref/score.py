"""Scores a model file on a prepared split (models/data/prepare.py output) with the
C++ engine: nystream-infer runs every clip as one stream (the numbers the plugin
produces: tests/plugin checks the two equal token by token), then per-class AP,
mAP and onset latency over all clips (nystream_ref.evaluate; an event never spans
two clips).

  python3 -m nystream_ref.score --model M.safetensors --data DIR/validation \\
      --infer build/cli/nystream-infer [--recompute] [--output report.json]

--recompute scores the batch model over each window instead of the continual
state (nystream-infer --recompute): the batch Nystromformer / full transformer.
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


def score(model, directory, infer, recompute=False, jobs=None, threshold=0.5, hop_seconds=0.1):
    bases = clip_bases(directory)
    if not bases:
        raise ValueError(f"{directory}: no clip_*.labels.csv (run models/data/prepare.py)")
    with tempfile.TemporaryDirectory() as scratch, \
            concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count()) as pool:
        results = list(pool.map(lambda b: infer_clip(infer, model, b, recompute, scratch), bases))
    classes = results[0][0]
    labels = np.concatenate([r[1] for r in results])
    scores = np.concatenate([r[2] for r in results])
    starts = np.cumsum([0] + [len(r[1]) for r in results[:-1]])
    report = evaluate.evaluate(classes, labels, scores, threshold, hop_seconds, starts)
    report.update(clips=len(bases), model=os.path.basename(model),
                  engine="nystream-infer" + (" --recompute" if recompute else ""))
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
    args = p.parse_args(argv)
    report = score(args.model, args.data, args.infer, args.recompute, args.jobs, args.threshold,
                   args.hop_seconds)
    print(f"{report['model']} ({report['engine']}), {report['clips']} clips")
    print(evaluate.format_report(report))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
