"""Evaluation on CSV labels and scores: per-frame average precision per class, its
mean (mAP), and event-onset latency.

CSV shapes (comma-separated, one header row, one row per token):
  labels  token,<class...>          0/1 per class (multi-label allowed)
  scores  token,status,<class...>   as nystream-infer writes: status "ok" or
                                    "non-finite" (score cells empty)
Rows are joined on `token` (an integer frame index); classes by column name (every
labels class must be a scores column; extra score columns are ignored). A token in
the labels but missing from the scores, or with status other than "ok", counts
as score -inf: ranked last, never crossing a threshold (a dropped frame is a miss,
not a free pass).

Average precision of a class (per frame, as sklearn's average_precision_score):
sort frames by score, descending; at each distinct score value (ties form one
step) take precision P_k and recall R_k; AP = sum_k (R_k - R_{k-1}) P_k. A class
with no positive frame has no AP (reported as null, left out of the mean).

Onset latency: an onset is a token labelled 1 whose previous token is labelled 0
(token 0 counts when labelled 1). Its latency is the number of tokens from the
onset to the first token t >= onset, while the event lasts (t before the next
0 label), whose score is >= threshold; if the score never crosses during the event
the onset is missed. Reported over all classes and per class: count, detected,
median and 90th percentile (linear interpolation, numpy's default) in tokens, and
in seconds when --hop-seconds is given.

  python3 -m nystream_ref.evaluate --labels L.csv --scores S.csv [--threshold 0.5]
                                   [--hop-seconds H] [--output report.json]
"""
import argparse
import csv
import json
import math
import sys

import numpy as np


def read_labels(path):
    """-> (classes, tokens [T] int, labels [T, C] in {0, 1})."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    if header[0] != "token":
        raise ValueError(f"{path}: header must start with 'token', got {header[:1]}")
    body = [r for r in rows[1:] if r]
    tokens = np.array([int(r[0]) for r in body], dtype=np.int64)
    labels = np.array([[float(x) for x in r[1:]] for r in body]).reshape(len(body), len(header) - 1)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{path}: labels must be 0 or 1")
    return header[1:], tokens, labels.astype(np.int8)


def read_scores(path):
    """-> (classes, tokens [T], scores [T, C] with -inf where status != ok)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    if header[:2] != ["token", "status"]:
        raise ValueError(f"{path}: header must start with 'token,status', got {header[:2]}")
    body = [r for r in rows[1:] if r]
    tokens = np.array([int(r[0]) for r in body], dtype=np.int64)
    scores = np.full((len(body), len(header) - 2), -np.inf)
    for i, r in enumerate(body):
        if r[1].strip() == "ok":
            scores[i] = [float(x) for x in r[2:]]
    return header[2:], tokens, scores


def align(label_classes, label_tokens, scores_classes, score_tokens, scores):
    """Scores [T, C] in the labels' token order and class order (-inf: missing)."""
    missing = [c for c in label_classes if c not in scores_classes]
    if missing:
        raise ValueError(f"classes missing from the scores: {missing}")
    columns = [scores_classes.index(c) for c in label_classes]
    row_of = {int(t): i for i, t in enumerate(score_tokens)}
    out = np.full((len(label_tokens), len(label_classes)), -np.inf)
    for i, t in enumerate(label_tokens):
        j = row_of.get(int(t))
        if j is not None:
            out[i] = scores[j, columns]
    return out


def average_precision(labels, scores):
    """AP of one class: labels [T] 0/1, scores [T]. None without positives."""
    labels = np.asarray(labels, dtype=np.float64)
    positives = labels.sum()
    if positives == 0:
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    s, y = np.asarray(scores, dtype=np.float64)[order], labels[order]
    true_pos = np.cumsum(y)
    # The last index of each run of equal scores is where a threshold sits.
    last = np.r_[np.nonzero(s[1:] != s[:-1])[0], len(s) - 1]
    tp = true_pos[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def onset_latencies(labels, scores, threshold):
    """One class: list of latencies in tokens (None for a missed onset)."""
    labels = np.asarray(labels)
    out = []
    t_total = len(labels)
    t = 0
    while t < t_total:
        if labels[t] == 1 and (t == 0 or labels[t - 1] == 0):
            end = t
            while end + 1 < t_total and labels[end + 1] == 1:
                end += 1
            hits = np.nonzero(scores[t:end + 1] >= threshold)[0]
            out.append(int(hits[0]) if len(hits) else None)
            t = end + 1
        else:
            t += 1
    return out


def summarize(latencies, hop_seconds=None):
    found = [x for x in latencies if x is not None]
    out = {"onsets": len(latencies), "detected": len(found),
           "median_tokens": float(np.median(found)) if found else None,
           "p90_tokens": float(np.percentile(found, 90)) if found else None}
    if hop_seconds:
        for key in ("median", "p90"):
            v = out[key + "_tokens"]
            out[key + "_seconds"] = None if v is None else v * hop_seconds
    return out


def evaluate(label_classes, labels, scores, threshold=0.5, hop_seconds=None, starts=None):
    """labels [T, C] 0/1 and scores [T, C] aligned. starts: first row of each
    concatenated stream (an event never spans two; default [0]). Returns the
    report dict."""
    per_class = {}
    aps = []
    all_latencies = []
    bounds = list(starts if starts is not None else [0]) + [len(labels)]
    for j, name in enumerate(label_classes):
        ap = average_precision(labels[:, j], scores[:, j])
        lat = [x for a, b in zip(bounds[:-1], bounds[1:])
               for x in onset_latencies(labels[a:b, j], scores[a:b, j], threshold)]
        all_latencies += lat
        per_class[name] = {"ap": ap, "positives": int(labels[:, j].sum()),
                           "latency": summarize(lat, hop_seconds)}
        if ap is not None:
            aps.append(ap)
    return {"frames": int(len(labels)), "threshold": threshold,
            "mAP": float(np.mean(aps)) if aps else None,
            "classes_with_positives": len(aps),
            "latency": summarize(all_latencies, hop_seconds),
            "per_class": per_class}


def evaluate_files(labels_path, scores_path, threshold=0.5, hop_seconds=None):
    classes, tokens, labels = read_labels(labels_path)
    s_classes, s_tokens, scores = read_scores(scores_path)
    return evaluate(classes, labels, align(classes, tokens, s_classes, s_tokens, scores),
                    threshold, hop_seconds)


def _fmt(x, spec=".4f"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_report(report):
    """The report as text: totals, then a line per class."""
    lat = report["latency"]
    lines = [f"frames {report['frames']}  mAP {_fmt(report['mAP'])}  onsets {lat['onsets']} "
             f"detected {lat['detected']}  latency median {_fmt(lat['median_tokens'], '.1f')} "
             f"p90 {_fmt(lat['p90_tokens'], '.1f')} tokens (threshold {report['threshold']})"]
    for name, r in report["per_class"].items():
        lines.append(f"  {name:20s} AP {_fmt(r['ap'])}  positives {r['positives']:6d}  onsets "
                     f"{r['latency']['detected']}/{r['latency']['onsets']}  median "
                     f"{_fmt(r['latency']['median_tokens'], '.1f')}  p90 "
                     f"{_fmt(r['latency']['p90_tokens'], '.1f')}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m nystream_ref.evaluate",
                                description="Per-frame AP, mAP and onset latency from CSV files.")
    p.add_argument("--labels", required=True, help="token,<class...> with 0/1")
    p.add_argument("--scores", required=True, help="token,status,<class...> (nystream-infer)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--hop-seconds", type=float, default=None, help="token hop, for latency in s")
    p.add_argument("--output", default=None, help="also write the report as JSON here")
    args = p.parse_args(argv)
    report = evaluate_files(args.labels, args.scores, args.threshold, args.hop_seconds)
    print(format_report(report))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
