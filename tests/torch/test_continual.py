"""The PyTorch continual step (nystream_ref.continual) against the per-step batch
reference, in float64 (agreement to 1e-9: same math, only summation order differs)
and float32 (the float32 bound of test_crosscheck.py), over 10n+5 steps, for
continual and fixed landmarks, both pinv modes, softmax attention and a
convolutional stem, with dropped (non-finite) tokens in one stream.
"""
import sys

from torch_test import SKIP  # noqa: F401  (exits 77 without torch)

import torch

from nystream_ref import reference
from nystream_ref.continual import ContinualStep
from nystream_ref.model import Config, random_model


def main():
    torch.set_num_threads(1)
    failures = 0
    base = dict(window=16, landmarks=4, input_dim=8, embed_dim=16, heads=2, ff_dim=32,
                classes=["a", "b", "c"], positional_period=35)
    cases = [dict(landmark_schedule=s, pinv=p) for s in ("continual", "fixed")
             for p in ("iterative", "exact")] + [dict(attention="softmax")]
    cases.append(dict(input_dim=40, linear_inputs=8,
                      stem={"input_offset": 8, "input_shape": [2, 4, 4], "pool_strips": 1,
                            "layers": [{"channels": 4, "kernel": [3, 3], "stride": [2, 2]}]}))
    for i, extra in enumerate(cases):
        c = Config(**{**base, **extra})
        model = random_model(c, seed=i)
        steps = 10 * c.window + 5
        x = torch.randn(steps, c.input_dim, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(i))
        valid = torch.ones(steps, dtype=torch.bool)
        if i == 0:
            valid[[5, 50, 51]] = False
            x[5, 0], x[50, 1], x[51, 2] = float("nan"), float("inf"), float("-inf")
        expected = reference.stream_logits(model, torch.where(valid[:, None], x, 0.0), valid)
        for dtype, tolerance in ((torch.float64, 1e-9), (torch.float32, 2e-4 if c.pinv ==
                                                          "iterative" else 2e-3)):
            step = ContinualStep(model, dtype=dtype)
            worst = 0.0
            for t in range(steps):
                out = step(x[t])
                if not valid[t]:
                    assert out is None, f"step {t}: a non-finite token gave scores"
                    continue
                worst = max(worst, float((out.double() - expected[t]).abs().max()))
            ok = worst < tolerance
            failures += not ok
            label = "stem" if c.stem else str(extra)
            print(f"{label:55s} {str(dtype):14s} max|err| {worst:.2e} (tolerance {tolerance:.0e})"
                  f" {'ok' if ok else 'FAIL'}")
    print("FAIL" if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
