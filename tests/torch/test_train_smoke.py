"""nystream_ref.train: (1) every training window (random stream offset, random
landmark phase, stream starts with padding) gives exactly the logits the stream
gives at that absolute time (the per-step reference), so the model trains on the
stale-landmark states it meets when streaming; (2) --smoke runs (continual 1 block,
fixed 2 blocks with k-means landmarks, a convolutional stem given by --stem-json
and --linear-inputs, softmax CE on exclusive labels): the loss
decreases, validation mAP rises, the export loads, and with nystream-infer given,
the C++ engine reproduces the trained model's per-step logits (2e-4, as
test_crosscheck.py).

Usage: test_train_smoke.py [NYSTREAM-INFER]
"""
import json
import os
import sys
import tempfile

from torch_test import infer_path, run_infer

import numpy as np
import torch

from nystream_ref import export, reference, train
from nystream_ref.model import Config, NystreamModel, init_weights, random_model, stem_spec

failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def windows_are_stream_states():
    for extra in (dict(blocks=1), dict(blocks=2), dict(blocks=2, landmark_schedule="fixed"),
                  dict(blocks=1, attention="softmax")):
        c = Config(window=12, landmarks=3, input_dim=5, embed_dim=8, heads=2, ff_dim=16,
                   classes=["a", "b"], positional_period=17, **extra)
        model = random_model(c, seed=4)
        g = torch.Generator().manual_seed(1)
        pairs = [(torch.randn(length, 5, generator=g).numpy(),
                  np.zeros((length, 2), np.float32)) for length in (40, 9, 100)]
        data = train.Sequences(pairs)
        worst, starts = 0.0, 0
        for _ in range(4):
            batch = train.Sequences.sample(data, c, 32, g, start_fraction=0.3)
            with torch.no_grad():
                got = train.forward_batch(model, batch)
            tokens, times, valid = batch["window"]
            for i in range(len(got)):
                # Rebuild the stream: the window's tokens at their absolute times;
                # the landmark window (continual) at its own; filler elsewhere
                # (never seen by step t_end's window or landmarks).
                t_end = int(times[i, -1])
                stream = torch.randn(t_end + 1, 5, generator=g, dtype=torch.float64)
                parts = [batch["window"]]
                if c.continual:
                    parts.append(batch["landmark_window"])
                for tk, tm, ok in parts:
                    for j in range(c.window):
                        if ok[i, j]:
                            stream[tm[i, j]] = tk[i, j].double()
                starts += bool((~valid[i]).any())
                want = reference.stream_logits(model, stream, steps=[t_end])[0]
                worst = max(worst, float((got[i].double() - want).abs().max()))
        check(worst < 1e-5, f"{extra}: training windows = stream states at their time "
                            f"(max |err| {worst:.1e}, {starts} stream-start windows)")


# A stem over the last 32 of 40 synthetic features, read as [2, 4, 4]; the
# linear projection reads the first 8.
STEM = {"input_offset": 8, "input_shape": [2, 4, 4],
        "layers": [{"channels": 4, "kernel": [3, 3]}, {"channels": 6, "kernel": [3, 1],
                                                       "stride": [2, 1]}],
        "pool_strips": 2}


def smoke(infer, directory):
    stem_file = os.path.join(directory, "stem.json")
    with open(stem_file, "w") as f:
        json.dump(STEM, f)
    runs = {"continual-1block": [],
            "fixed-2blocks": ["--schedule", "fixed", "--blocks", "2"],
            "continual-2blocks-exact": ["--blocks", "2", "--pinv", "exact"],
            "fixed-stem": ["--schedule", "fixed", "--input-dim", "40", "--linear-inputs", "8",
                           "--stem-json", stem_file]}
    numbers = {}
    for name, extra in runs.items():
        out = os.path.join(directory, name + ".safetensors")
        summary_path = os.path.join(directory, name + ".json")
        code = train.main(["--smoke", "--out", out, "--summary", summary_path] + extra)
        summary = json.load(open(summary_path))
        numbers[name] = {k: summary[k] for k in ("steps", "seconds", "loss_first10",
                                                 "loss_last10", "val_mAP_before",
                                                 "val_mAP_after")}
        check(code == 0, f"{name}: train --smoke ran")
        check(summary["loss_last10"] < 0.7 * summary["loss_first10"],
              f"{name}: loss {summary['loss_first10']:.3f} -> {summary['loss_last10']:.3f}")
        check(summary["val_mAP_after"] > summary["val_mAP_before"] and
              summary["val_mAP_after"] > 0.8,
              f"{name}: validation mAP {summary['val_mAP_before']:.3f} -> "
              f"{summary['val_mAP_after']:.3f}")
        model = export.load(out)
        meta = model.info["provenance"]
        check("train_loss" in meta["metrics"] and "val_mAP" in meta["metrics"],
              f"{name}: export loads, provenance metrics {meta['metrics']}")
        if "--stem-json" in extra:
            # The projection starts at zero (the linear model) and has learned.
            learned = float(model.stem.proj.weight.abs().max())
            fresh = init_weights(NystreamModel(model.c), 0).stem.proj.weight
            check(model.c.stem == stem_spec(STEM) and model.c.linear_inputs == 8 and
                  not fresh.any() and learned > 1e-3,
                  f"{name}: architecture.stem and linear_inputs exported, "
                  f"max |stem.proj| {learned:.3f} after training from 0")
        if infer:
            x = np.random.default_rng(5).standard_normal((200, model.c.input_dim)) * 1.5 + 0.5
            x = x.astype(np.float32)
            path = os.path.join(directory, "x.npy")
            np.save(path, x)
            _, status, logits = run_infer(infer, out, path)
            want = reference.stream_logits(model, torch.from_numpy(x)).numpy()
            err = float(np.abs(logits - want).max())
            tolerance = 2e-3 if model.c.pinv == "exact" else 2e-4
            check(all(s == "ok" for s in status) and err < tolerance,
                  f"{name}: nystream-infer runs the export (max |logit err| {err:.1e}, "
                  f"tolerance {tolerance:.0e})")
    print(json.dumps(numbers, indent=1))


def main():
    torch.set_num_threads(1)
    windows_are_stream_states()
    with tempfile.TemporaryDirectory() as d:
        smoke(infer_path(), d)
        # Exclusive classes, softmax + CE, from .npz files.
        pairs = train.synthetic(3, 800, 6, 3, seed=3)
        files = []
        for i, (f, l) in enumerate(pairs):
            path = os.path.join(d, f"seq{i}.npz")
            np.savez(path, features=f, labels=l.argmax(1) * (l.max(1) > 0),
                     classes=np.array(["none", "b", "c"]))
            files.append(path)
        out = os.path.join(d, "softmax.safetensors")
        code = train.main(["--data"] + files[:2] + ["--val", files[2], "--activation", "softmax",
                           "--input-dim", "6", "--steps", "60", "--out", out,
                           "--checkpoint", os.path.join(d, "ckpt.pt")])
        model = export.load(out)
        again = train.load_checkpoint(os.path.join(d, "ckpt.pt")).double()
        x = torch.randn(50, 6, dtype=torch.float64)
        same = torch.allclose(reference.stream_logits(model, x),
                              reference.stream_logits(again, x), atol=1e-5)
        check(code == 0 and model.c.classes == ("none", "b", "c") and same,
              "npz data, exclusive classes: export and checkpoint agree")
    print("FAIL" if failures else "PASS", f"({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
