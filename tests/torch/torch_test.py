"""Shared by the tests in tests/torch: imports torch or exits 77 (meson's "skipped")
when it is genuinely missing, makes models/ importable when run by hand, and runs
nystream-infer (cli/) on a model and a stream.

Run a test by hand: /usr/bin/python3 tests/torch/test_X.py [path/to/nystream-infer]
"""
import csv
import io
import os
import subprocess
import sys

SKIP = 77

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))

try:
    import numpy  # noqa: F401
    import torch  # noqa: F401
except ImportError as error:  # only a missing package skips; any other failure fails
    print(f"SKIP: {error} (install python3-torch python3-numpy)")
    sys.exit(SKIP)


def infer_path():
    """The nystream-infer executable given as argv[1], or None."""
    return sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None


def run_infer(infer, model_path, features_path, logits=True):
    """Runs nystream-infer with CSV on stdout. Returns (classes, status per token,
    values [T, C] with NaN where the status is not ok)."""
    import numpy as np
    command = [infer, "--model", model_path, "--input", features_path, "--output", "-",
               "--format", "csv"] + (["--logits"] if logits else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
    rows = list(csv.reader(io.StringIO(done.stdout)))
    header = rows[0]
    if header[:2] != ["token", "status"]:
        raise RuntimeError(f"unexpected CSV header {header}")
    classes = header[2:]
    status, values = [], []
    for i, row in enumerate(rows[1:]):
        if int(row[0]) != i:
            raise RuntimeError(f"row {i} has token {row[0]}")
        status.append(row[1])
        values.append([float(x) if row[1] == "ok" else float("nan") for x in row[2:]])
    return classes, status, np.array(values, dtype=np.float64).reshape(len(status), len(classes))
