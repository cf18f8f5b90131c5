#!/usr/bin/python3
"""Prints a per-class timeline of nymetaconvert JSON lines, grouped by the detector
that made them (one group per source element: audio events, video actions), with
the ground truth above each class when a truth file is given.

    timeline.py RESULTS.jsonl [MORE.jsonl ...] [--truth demo-truth.json]
                [--merged OUT.jsonl] [--width COLUMNS]

One column per time bin (the results' whole span split into --width bins):

    found  '#' the class was active in at least half of the results in the bin,
           '+' in some of them, '.' in none
    truth  '=' the class is present for at least half of the bin (demo-truth.json
           from tools/demo_media.py: audio and video segments in seconds; the
           `none` / `background` class is true where no other class of its
           modality is)

and, with a truth file, each class's agreement over the bins (intersection over
union of the '#' and '=' bins). --merged writes every input line into one file
ordered by time (start_timestamp, then detector), as tools/demo.sh does with the
audio and video branches' files. Needs only the Python standard library."""
import argparse
import json
import shutil
import sys


def read_lines(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append((json.loads(line), line.rstrip("\n")))
                    except ValueError as e:
                        sys.exit(f"{path}:{n}: not a JSON line ({e})")
    rows.sort(key=lambda r: (r[0]["start_timestamp"], r[0].get("detector", ""), r[0].get("token", 0)))
    return [r for r, _ in rows], [text for _, text in rows]


def class_order(rows, truth_classes):
    """The model's classes in its own order: the JSON's scores object is sorted by
    name, so the order comes from the label ids the lines carry (or the truth's)."""
    names = list(rows[0]["scores"])
    ids = {}
    for r in rows:
        ids.setdefault(r.get("label"), r.get("label_id"))
        for ev in r.get("events", []):
            d = ev.get("detection", {})
            ids.setdefault(d.get("label"), d.get("label_id"))
    if truth_classes and set(truth_classes) == set(names):
        return list(truth_classes)
    return sorted(names, key=lambda c: (ids.get(c) is None, ids.get(c) or 0, c))


def modality(rows):
    return "video" if any("resolution" in r for r in rows) else "audio"


def truth_bins(truth, kind, classes, bins, bin_s):
    """{class: [bool per bin]} from the truth's segments of this modality."""
    section = (truth or {}).get(kind)
    if not section:
        return None
    out = {}
    for c in classes:
        cover = [0.0] * bins
        for seg in section.get("segments", []):
            if seg["class"] != c:
                continue
            for b in range(bins):
                lo, hi = b * bin_s, (b + 1) * bin_s
                cover[b] += max(0.0, min(hi, seg["end"]) - max(lo, seg["start"]))
        out[c] = [x >= 0.5 * bin_s for x in cover]
    # The "nothing happens" class: true where no other class of the modality is.
    rest = [c for c in classes if c in ("none", "background")]
    for c in rest:
        others = [out[o] for o in classes if o not in rest]
        out[c] = [not any(o[b] for o in others) for b in range(bins)]
    return out


def found_bins(rows, c, bins, bin_s):
    """Per bin: the share of the results overlapping it in which c was active."""
    active = [0] * bins
    total = [0] * bins
    for r in rows:
        s, e = r["start_timestamp"] / 1e9, r["end_timestamp"] / 1e9
        on = any(ev.get("event_type") == c for ev in r.get("events", []))
        for b in range(max(0, int(s / bin_s)), min(bins, int(e / bin_s - 1e-9) + 1)):
            total[b] += 1
            active[b] += on
    return [a / t if t else None for a, t in zip(active, total)]


def axis(bins, bin_s, indent):
    """Tick labels every 5 s (or so) over the bins."""
    end = bins * bin_s
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1e9) if end / s <= bins / 6)
    labels = [" "] * (bins + 8)
    ticks = ["-"] * bins
    t = 0.0
    while t < end + 1e-9:
        b = min(bins - 1, int(round(t / bin_s)))
        ticks[b] = "|"
        text = f"{t:g}"
        if all(ch == " " for ch in labels[b:b + len(text) + 1]):
            labels[b:b + len(text)] = text
        t += step
    return (" " * indent + "".join(labels).rstrip() + "  s\n"
            + " " * indent + "".join(ticks))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="nymetaconvert JSON lines (one file or several)")
    ap.add_argument("--truth", help="demo-truth.json (tools/demo_media.py)")
    ap.add_argument("--merged", help="also write all lines, ordered by time, to this file")
    ap.add_argument("--width", type=int, default=0,
                    help="columns (time bins); default: what fits the terminal ($COLUMNS), 40..120")
    args = ap.parse_args()

    rows, texts = read_lines(args.results)
    if args.merged:
        with open(args.merged, "w") as f:
            for text in texts:
                f.write(text + "\n")
    if not rows:
        print(f"{', '.join(args.results)}: no results")
        return 1
    truth = None
    if args.truth:
        with open(args.truth) as f:
            truth = json.load(f)

    groups = {}
    for r in rows:
        groups.setdefault(r.get("detector") or r.get("model", "?"), []).append(r)
    end = max(r["end_timestamp"] for r in rows) / 1e9
    if truth and truth.get("seconds"):
        end = max(end, float(truth["seconds"]))
    width = max(len(c) for g in groups.values() for c in g[0]["scores"]) + 2
    indent = width + 7
    bins = args.width or min(120, max(40, shutil.get_terminal_size().columns - indent - 11))
    bins = max(10, bins)
    bin_s = end / bins

    print(f"{len(rows)} results from {len(groups)} detector{'s' * (len(groups) != 1)}, "
          f"0 .. {end:.1f} s, {bin_s:.2f} s per column"
          + (f"; truth: {args.truth}" if truth else ""))
    print(axis(bins, bin_s, indent))
    for name, g in sorted(groups.items(), key=lambda kv: (modality(kv[1]), kv[0])):
        kind = modality(g)
        classes = class_order(g, ((truth or {}).get(kind) or {}).get("classes"))
        print(f"{kind}: {name} ({len(g)} results, model {g[0].get('model', '?')})")
        tb = truth_bins(truth, kind, classes, bins, bin_s)
        for c in classes:
            fb = found_bins(g, c, bins, bin_s)
            marks = "".join(" " if v is None else "#" if v >= 0.5 else "+" if v > 0 else "." for v in fb)
            if tb is not None:
                print(f"  {c:>{width}} truth " + "".join("=" if t else " " for t in tb[c]).rstrip())
                on = [v is not None and v >= 0.5 for v in fb]
                inter = sum(a and b for a, b in zip(on, tb[c]))
                union = sum(a or b for a, b in zip(on, tb[c]))
                score = f"  IoU {inter / union:.2f}" if union else ""
                print(f"  {'':>{width}} found {marks}{score}")
            else:
                print(f"  {c:>{width}} {'':5} {marks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
