"""nystream_ref.evaluate on hand-computed cases: average precision (with ties, no
positives, non-finite frames), mAP, onset latency, and the CSV readers
(nystream-infer's score format, rows joined on token, classes by name); then
nystream_ref.score's clip bootstrap and paired comparison.
"""
import json
import os
import sys
import tempfile

from torch_test import SKIP  # noqa: F401  (exits 77 without numpy)

from nystream_ref import evaluate as ev
from nystream_ref import score as sc

failures = []


def near(a, b, what, tol=1e-12):
    ok = (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)
    print(("ok   " if ok else "FAIL ") + f"{what}: got {a}, expected {b}")
    if not ok:
        failures.append(what)


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def check_bootstrap():
    np = ev.np
    classes = ["a", "b"]
    # Clip 0 ranks both classes perfectly (AP 1), clip 1 inverts class a.
    good = (classes, np.array([[1, 0], [0, 1], [1, 0]]), np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]))
    bad = (classes, np.array([[1, 0], [0, 1], [0, 1]]), np.array([[0.1, 0.2], [0.9, 0.7], [0.8, 0.9]]))
    near(sc.mean_ap([good]), 1.0, "mean_ap of a perfect clip")
    whole = sc.evaluate_clips([good, bad], 0.5, None)["mAP"]
    near(sc.mean_ap([good, bad]), whole, "mean_ap is evaluate's mAP")
    draws = sc.bootstrap([[good, bad]], 400, seed=1)[:, 0]
    # A resample is 2 clips: both good (1.0), both bad, or one of each (= whole).
    check(sc.mean_ap([bad, bad]) <= draws.min() and draws.max() == 1.0, "bootstrap range")
    near(float(np.mean(draws == 1.0)), 0.25, "bootstrap: both clips good a quarter of the time", 0.06)
    low, high = sc.interval(draws)
    check(low <= whole <= high, "the interval holds the whole set's mAP")
    # Paired: a model against itself differs by exactly 0 in every resample; against
    # a model that is perfect on every clip, by the whole mAP minus 1.
    runs, groups = [[good, bad], [good, bad]], {"x": [0]}
    same = sc.compare(runs, groups, sc.group_draws(runs, groups, 100))
    near(same[0][4], 0.0, "compare with itself: difference")
    check(same[0][5] == [0.0, 0.0], "compare with itself: interval [0, 0]")
    perfect = (classes, bad[1], bad[1].astype(float))
    runs, groups = [[good, bad], [good, perfect]], {"x": [0], "y": [1]}
    other = sc.compare(runs, groups, sc.group_draws(runs, groups, 100))
    near(other[0][4], whole - 1.0, "compare: all clips' difference")
    check([row[0] for row in other] == ["all clips", "y", "x"], "compare: the worst condition first")
    # --compare-data: the other model's features must be of the same clips (checked
    # before anything runs, so no engine is needed here).
    with tempfile.TemporaryDirectory() as d:
        for sub, clips in (("mine", ("clip_00000", "clip_00001")), ("other", ("clip_00000", "clip_00002"))):
            os.makedirs(os.path.join(d, sub))
            for c in clips:
                open(os.path.join(d, sub, c + ".labels.csv"), "w").close()
        try:
            sc.score("m.safetensors", os.path.join(d, "mine"), "/nonexistent/nystream-infer", resamples=10,
                     other="o.safetensors", other_directory=os.path.join(d, "other"))
            check(False, "compare_data: other clips are refused")
        except ValueError as e:
            check("not the clips of" in str(e), f"compare_data: other clips are refused ({e})")


def main():
    # Sorted: 0.9 (pos) 0.8 (neg) 0.7 (pos) 0.1 (neg). Recall steps at ranks 1 and 3:
    # AP = 0.5 * 1 + 0.5 * 2/3.
    near(ev.average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]), 0.5 + 1 / 3, "AP basic")
    # Ties are one threshold: {0.5, 0.5} gives P = 1/2 at R = 1/2; then P = 2/3 at R = 1.
    near(ev.average_precision([1, 0, 1], [0.5, 0.5, 0.2]), 0.25 + 1 / 3, "AP with a tie")
    near(ev.average_precision([0, 1, 1], [0.1, 0.5, 0.6]), 1.0, "AP perfect ranking")
    near(ev.average_precision([0, 0], [0.3, 0.4]), None, "AP without positives")
    # A positive with no score (-inf) ranks last: P = 1 at R = 1/2, P = 2/3 at R = 1.
    near(ev.average_precision([1, 0, 1], [0.9, 0.3, float("-inf")]), 0.5 + 1 / 3,
         "AP with a non-finite positive")
    # Worst case: positives ranked after all negatives, 1 of 3: AP = 1/3.
    near(ev.average_precision([0, 0, 1], [0.9, 0.8, 0.1]), 1 / 3, "AP worst ranking")

    # Latency: class a onsets at 2 (crossing at 3: 1 token) and 7 (never >= 0.5 while
    # the event lasts; the 0.9 at token 9 is after it: missed); class b onsets at 0
    # (already above) and 6 (crossing at 6): 0 and 0.
    labels_a = [0, 0, 1, 1, 1, 0, 0, 1, 1, 0]
    scores_a = [0.1, 0.2, 0.3, 0.6, 0.9, 0.9, 0.1, 0.2, 0.4, 0.9]
    labels_b = [1, 1, 0, 0, 0, 0, 1, 0, 0, 0]
    scores_b = [0.7, 0.7, 0.1, 0.1, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1]
    got = ev.onset_latencies(labels_a, ev.np.array(scores_a), 0.5)
    ok = got == [1, None]
    print(("ok   " if ok else "FAIL ") + f"latencies of a: {got}")
    if not ok:
        failures.append("latencies a")

    with tempfile.TemporaryDirectory() as d:
        lp, sp = os.path.join(d, "labels.csv"), os.path.join(d, "scores.csv")
        with open(lp, "w") as f:
            f.write("token,a,b,never\n")
            for t in range(10):
                f.write(f"{t},{labels_a[t]},{labels_b[t]},0\n")
        with open(sp, "w") as f:  # nystream-infer's shape, extra class, rows reversed
            f.write("token,status,b,extra,never,a\n")
            for t in reversed(range(10)):
                if t == 5:
                    f.write(f"{t},non-finite,,,,\n")
                else:
                    f.write(f"{t},ok,{scores_b[t]:.9g},0.5,0.1,{scores_a[t]:.9g}\n")
        report = ev.evaluate_files(lp, sp, threshold=0.5, hop_seconds=0.01)
        json.dumps(report)  # serialisable
        # a: positives 2,3,4,7,8 at .3 .6 .9 .2 .4; negatives .1 .2 -inf (token 5,
        # non-finite, else 0.9 and in the top tie) .1 .9. Ranking: .9 t4(+) t9(-)
        # [P 1/2, R 1/5], .6 (+) [2/3, 2/5], .4 (+) [3/4, 3/5], .3 (+) [4/5, 4/5],
        # .2 t1(-) t7(+) [5/7, 1]: AP = 1/5 (1/2 + 2/3 + 3/4 + 4/5 + 5/7).
        ap_a = (1 / 2 + 2 / 3 + 3 / 4 + 4 / 5 + 5 / 7) / 5
        near(report["per_class"]["a"]["ap"], ap_a, "AP a from CSV (non-finite negative)")
        # b: positives 0, 1, 6 at 0.7, 0.7, 0.6 above every negative (0.1, -inf): AP = 1.
        near(report["per_class"]["b"]["ap"], 1.0, "AP b from CSV")
        near(report["per_class"]["never"]["ap"], None, "AP of a class without positives")
        near(report["mAP"], (ap_a + 1.0) / 2, "mAP over classes with positives")
        lat = report["latency"]
        near(float(lat["onsets"]), 4.0, "onsets")
        near(float(lat["detected"]), 3.0, "detected onsets")
        near(lat["median_tokens"], 0.0, "median latency")
        # Detected [1, 0, 0] sorted [0, 0, 1]: p90 at rank 0.9 * 2 = 1.8 -> 0.8.
        near(lat["p90_tokens"], 0.8, "p90 latency", 1e-12)
        near(lat["p90_seconds"], 0.008, "p90 latency in seconds", 1e-12)
        # All scores finite: token 5 (negative, 0.9) joins the top tie group.
        with open(sp, "w") as f:
            f.write("token,status,a,b,never\n")
            for t in range(10):
                f.write(f"{t},ok,{scores_a[t]},{scores_b[t]},0\n")
        report = ev.evaluate_files(lp, sp)
        # a ranking: .9 t4(+) .9 t5(-) .9 t9(-) [one tie group: P=1/3, R=1/5],
        # .6 t3(+) [P=2/4, R=2/5], .4 t8(+) [3/5, 3/5], .3 t2(+) [4/6, 4/5],
        # .2 t1(-) t7(+) tie [5/8, 1]. AP = 1/5 (1/3 + 1/2 + 3/5 + 2/3 + 5/8).
        near(report["per_class"]["a"]["ap"], (1 / 3 + 1 / 2 + 3 / 5 + 2 / 3 + 5 / 8) / 5,
             "AP a with tied negatives")
        near(report["mAP"], ((1 / 3 + 1 / 2 + 3 / 5 + 2 / 3 + 5 / 8) / 5 + 1.0) / 2, "mAP")
        ev.main(["--labels", lp, "--scores", sp, "--output", os.path.join(d, "r.json")])
    check_bootstrap()
    print("FAIL" if failures else "PASS", f"({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
