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
--bootstrap N resamples the clips N times (with replacement) and gives the 90 %
interval of each mAP: on a hundred clips it spans several points, more than many
changes a model gets. --compare OTHER.safetensors scores a second model on the
same clips (--compare-data DIR: their features from OTHER's own front end) and
gives the paired difference (this model minus OTHER) with its interval from the
same resamples, overall and by condition: the way to say that one model is
better on a set.
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


def by_condition(results, groups, threshold, hop_seconds):
    """[(condition, clips, tokens, mAP, classes)], worst first; groups: condition_groups;
    classes: how many classes have positives in the group (the mAP's mean is over
    those: a group of clips where no one acts has `none` only)."""
    rows = []
    for name, members in groups.items():
        group = [results[j] for j in members]
        report = evaluate_clips(group, threshold, hop_seconds)
        rows.append((name, len(group), sum(len(r[1]) for r in group), report["mAP"],
                     sum(c["ap"] is not None for c in report["per_class"].values())))
    return sorted(rows, key=lambda row: row[3])


def mean_ap(results):
    """mAP of the clips' (classes, labels, scores) concatenated (evaluate's mAP, without
    the onsets): None when no class has a positive."""
    labels = np.concatenate([r[1] for r in results])
    scores = np.concatenate([r[2] for r in results])
    aps = [a for a in (evaluate.average_precision(labels[:, j], scores[:, j])
                       for j in range(labels.shape[1])) if a is not None]
    return float(np.mean(aps)) if aps else None


def bootstrap(runs, resamples, seed=0):
    """runs: one list of per-clip results per model, the same clips in the same order.
    mAPs of `resamples` clip resamples (with replacement), the same resample for
    every model: [resamples, models] (NaN where a resample has no positive)."""
    rng = np.random.default_rng(seed)
    n = len(runs[0])
    out = np.full((resamples, len(runs)), np.nan)
    for i in range(resamples):
        pick = rng.integers(0, n, n)
        for k, results in enumerate(runs):
            value = mean_ap([results[j] for j in pick])
            out[i, k] = np.nan if value is None else value
    return out


def interval(values):
    """The 90 % interval of bootstrap values, [5th, 95th] percentile."""
    values = values[~np.isnan(values)]
    return [float(np.percentile(values, 5)), float(np.percentile(values, 95))] if len(values) else None


def condition_groups(bases, manifest):
    """{condition: [clip index]}, from each clip's manifest entry."""
    entries = {c.get("name", c.get("clip")): c for c in manifest["clips"]}  # audio: name, video: clip
    groups = {}
    for i, base in enumerate(bases):
        for condition in clip_conditions(entries[os.path.basename(base)]):
            groups.setdefault(condition, []).append(i)
    return groups


def infer_all(model, bases, infer, recompute, jobs):
    with tempfile.TemporaryDirectory() as scratch, \
            concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count()) as pool:
        return list(pool.map(lambda b: infer_clip(infer, model, b, recompute, scratch), bases))


ALL_CLIPS = "all clips"


def group_draws(runs, groups, resamples, seed=0):
    """bootstrap of every model on all clips and on each condition's clips (groups:
    condition_groups): {name: [resamples, models]}, the same resamples for every model."""
    everything = {ALL_CLIPS: list(range(len(runs[0]))), **groups}
    return {name: bootstrap([[results[j] for j in members] for results in runs], resamples, seed)
            for name, members in everything.items()}


def compare(runs, groups, draws):
    """Paired comparison of two models (runs[0] minus runs[1]) on all clips and on
    each condition's, draws: their group_draws. [(group, clips, mAP 0, mAP 1,
    difference, its 90 % interval)], all clips first, then the conditions by
    difference, lowest first."""
    rows = []
    for name, members in [(ALL_CLIPS, list(range(len(runs[0]))))] + sorted(groups.items()):
        values = [mean_ap([results[j] for j in members]) for results in runs]
        if None in values:
            continue
        rows.append((name, len(members), values[0], values[1], values[0] - values[1],
                     interval(draws[name][:, 0] - draws[name][:, 1])))
    return rows[:1] + sorted(rows[1:], key=lambda row: row[4])


def score(model, directory, infer, recompute=False, jobs=None, threshold=0.5, hop_seconds=0.1,
          manifest=None, resamples=0, seed=0, other=None, other_directory=None):
    bases = clip_bases(directory)
    if not bases:
        raise ValueError(f"{directory}: no clip_*.labels.csv (run models/data/prepare.py)")
    other_bases = bases
    if other_directory:  # the other model's front end: its features of the same clips
        other_bases = clip_bases(other_directory)
        if [os.path.basename(b) for b in other_bases] != [os.path.basename(b) for b in bases]:
            raise ValueError(f"{other_directory}: not the clips of {directory}")
    results = infer_all(model, bases, infer, recompute, jobs)
    report = evaluate_clips(results, threshold, hop_seconds)
    report.update(clips=len(bases), model=os.path.basename(model),
                  engine="nystream-infer" + (" --recompute" if recompute else ""))
    groups = condition_groups(bases, manifest) if manifest else {}
    if manifest:
        report["by_condition"] = by_condition(results, groups, threshold, hop_seconds)
    if other and not resamples:
        raise ValueError("comparing two models needs resamples")
    runs = [results] + ([infer_all(other, other_bases, infer, recompute, jobs)] if other else [])
    if resamples:
        draws = group_draws(runs, groups, resamples, seed)
        report["mAP_interval"] = interval(draws[ALL_CLIPS][:, 0])
        report["by_condition"] = [row + (interval(draws[row[0]][:, 0]),)
                                  for row in report.get("by_condition", [])]
    if other:
        report["compare"] = {"other": os.path.basename(other), "resamples": resamples,
                             "rows": compare(runs, groups, draws)}
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
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="clip resamples for 90 %% intervals (1000 is plenty)")
    p.add_argument("--seed", type=int, default=0, help="of the resamples")
    p.add_argument("--compare", default=None, metavar="OTHER",
                   help="a second model file: the paired difference on the same clips")
    p.add_argument("--compare-data", default=None, metavar="DIR",
                   help="the same clips prepared with the second model's front end (default: --data)")
    args = p.parse_args(argv)
    if args.compare and not args.bootstrap:
        p.error("--compare needs --bootstrap N")
    if args.compare_data and not args.compare:
        p.error("--compare-data needs --compare")
    manifest = None
    if args.manifest:
        with open(args.manifest) as f:
            manifest = json.load(f)
    report = score(args.model, args.data, args.infer, args.recompute, args.jobs, args.threshold,
                   args.hop_seconds, manifest, args.bootstrap, args.seed, args.compare, args.compare_data)
    print(f"{report['model']} ({report['engine']}), {report['clips']} clips")
    print(evaluate.format_report(report))
    span = lambda i: f"{i[0]:.3f}..{i[1]:.3f}" if i else "-"  # noqa: E731
    if args.bootstrap:
        print(f"mAP 90 % interval ({args.bootstrap} clip resamples): {span(report['mAP_interval'])}")
    if manifest:
        extra = " 90 % interval |" if args.bootstrap else ""
        print(f"\n| condition | clips | tokens | classes | mAP |{extra}\n|---|---|---|---|---|"
              + ("---|" if args.bootstrap else ""))
        for row in report["by_condition"]:
            name, clips, tokens, m, classes = row[:5]
            print(f"| {name} | {clips} | {tokens} | {classes} | {m:.3f} |"
                  + (f" {span(row[5])} |" if args.bootstrap else ""))
    if args.compare:
        c = report["compare"]
        print(f"\n{report['model']} minus {c['other']}, paired ({c['resamples']} clip resamples):\n"
              "\n| clips of | clips | mAP | mAP other | difference | 90 % interval |\n"
              "|---|---|---|---|---|---|")
        for name, clips, a, b, d, i in c["rows"]:
            print(f"| {name} | {clips} | {a:.3f} | {b:.3f} | {d:+.3f} | {span(i)} |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
