"""The evaluation tables of the model cards, from models/train_models.sh's runs:
per variant mAP, onset latency and per-class AP on the held-out validation split,
and CPU time per token of the stepped model and of its re-encode (nystream-bench
--model, written as <variant>.bench.json), as Markdown.

  python3 -m nystream_ref.card --runs WORK
"""
import argparse
import json
import os
import sys

from . import safetensors_io

# (report file, row label): the two landmark schedules, the baselines, then the
# other depths and assemblies (fixed landmarks; missing runs are left out).
ROWS = [
    ("nystrom-continual", "continual Nystrom, continual landmarks (stepped)"),
    ("nystrom-fixed", "continual Nystrom, fixed landmarks (stepped)"),
    ("nystrom-batch", "batch Nystromformer (window re-encoded)"),
    ("softmax", "full softmax transformer (window re-encoded)"),
    ("softmax-continual", "continual softmax transformer (stepped)"),
    ("1block-fixed", "continual Nystrom, fixed landmarks, 1 block (stepped)"),
    ("stacked2-fixed", "continual Nystrom, fixed landmarks, stacked (stepped)"),
    ("stacked3-fixed", "continual Nystrom, fixed landmarks, stacked (stepped)"),
    ("stacked4-fixed", "continual Nystrom, fixed landmarks, stacked (stepped)"),
]


def _f(x, spec):
    return "-" if x is None else format(x, spec)


def cpu_us(bench_path, kind):
    """CPU microseconds per iteration of nystream-bench's file/<stem>/<kind> run."""
    if not os.path.exists(bench_path):
        return None
    with open(bench_path) as f:
        runs = json.load(f)["benchmarks"]
    stem = os.path.basename(bench_path)[:-len(".bench.json")]
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    for run in runs:
        if run["name"] == f"file/{stem}/{kind}" and run.get("run_type", "iteration") == "iteration":
            return run["cpu_time"] * scale[run["time_unit"]]
    return None


def depth(model_path):
    """"2 stacked", "2 retroactive" or "1": the blocks and assembly of a model file."""
    if not os.path.exists(model_path):
        return None
    arch = json.loads(safetensors_io.read(model_path)[1]["nystream"])["architecture"]
    blocks = arch.get("blocks", 1)
    return f"{blocks} {arch.get('assembly', 'retroactive')}" if blocks > 1 else "1"


def table(runs_dir):
    reports = []
    for key, label in ROWS:
        path = os.path.join(runs_dir, key + ".json")
        if os.path.exists(path):
            with open(path) as f:
                reports.append((key, label, json.load(f)))
    if not reports:
        return ""
    classes = list(reports[0][2]["per_class"])
    head = (["variant", "blocks", "mAP", "onset median s", "onset p90 s", "onsets found"] + classes
            + ["step us/token", "re-encode us/token"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, r in reports:
        lat = r["latency"]
        stem = os.path.join(runs_dir, "softmax" if key.startswith("softmax") else key)
        cells = [label, depth(stem + ".safetensors") or "-", _f(r["mAP"], ".3f"), _f(lat.get("median_seconds"), ".2f"),
                 _f(lat.get("p90_seconds"), ".2f"), f"{lat['detected']}/{lat['onsets']}"]
        cells += [_f(r["per_class"][c]["ap"], ".3f") for c in classes]
        bench = stem + ".bench.json"
        cells += [_f(cpu_us(bench, "step"), ".1f"), _f(cpu_us(bench, "reencode"), ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    first = reports[0][2]
    lines.append("")
    lines.append(f"{first['clips']} validation clips, {first['frames']} tokens; positives per class: "
                 + ", ".join(f"{c} {first['per_class'][c]['positives']}" for c in classes) + ".")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m nystream_ref.card",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="train_models.sh's WORK directory")
    args = p.parse_args(argv)
    for modality in ("audio", "video"):
        runs = os.path.join(args.runs, modality, "runs")
        if os.path.isdir(runs):
            print(f"### {modality}\n\n{table(runs)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
