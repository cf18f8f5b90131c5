"""Prints a per-class timeline of nymetaconvert JSON lines: one row per class,
one column per result, '#' where the class was active, '.' where not."""
import json
import sys


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    if not rows:
        print(f"{path}: no results")
        return 1
    classes = list(rows[0]["scores"])
    width = max(len(c) for c in classes)
    step = max(1, len(rows) // 100)  # at most ~100 columns
    shown = rows[::step]
    start, end = rows[0]["start_timestamp"] / 1e9, rows[-1]["end_timestamp"] / 1e9
    print(f"{len(rows)} results from {rows[0]['model']}, {start:.1f} s .. {end:.1f} s")
    for c in classes:
        marks = "".join("#" if any(e["event_type"] == c for e in r["events"]) else "." for r in shown)
        print(f"{c:>{width}} {marks}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
