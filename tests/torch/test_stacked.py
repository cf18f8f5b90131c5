"""The stacked assembly in nystream_ref (algorithm.md 7; docs/model-format.md
`assembly`): causal single-output layers, row t of layer l attending with its own
query over the last n outputs of layer l-1.

1. The training forward (NystreamModel.stacked_forward: banded windows over the
   receptive field, L(n-1)+1 tokens) equals the per-step reference
   (reference.stream_logits -> stacked_stream, the whole stream layer by layer) at
   every step of a long random stream with dropped tokens: float64, every tensor
   random, fixed landmarks (iterative and exact pinv) and softmax, blocks 2, 3
   and 5; also with Attention.banded's other settings (blocks of n rows, the
   per-row-maxima fallback), and with landmark scores large enough to need the
   fallback. Tokens before the receptive field do not matter, its oldest does.
2. The reference equals a literal stream written from the spec: per layer a list
   of its inputs, each step runs the batch Block on the newest row over the last
   n of them (zero-padded), continual landmarks the segment means of that layer's
   own window at the last completion (NystreamModel's retroactive code, rows=1).
   Continual (both pinvs), fixed and softmax, blocks 2 and 3, two n / m.
3. Stacked with blocks = 1 equals the retroactive 1-block model, all schedules.
4. Model files: the `assembly` key is written (always), read back, and a file
   without it loads as retroactive; Config's refusals.
5. Training: sampled windows (random offsets, stream starts, augmentation) give
   the stream's logits at their time; k-means landmarks per layer on that layer's
   own inputs; --smoke runs with --assembly stacked; continual is refused.
6. With NYSTREAM-INFER: exported stacked models streamed through the C++ engine
   against the reference (test_crosscheck.py's cross_check and tolerances).

Every tolerance is shown able to fail: each check also runs on a copy of the model
with one weight moved by 1e-6 (or with fresh instead of stale landmarks), which
must exceed it.

Usage: test_stacked.py [NYSTREAM-INFER]
"""
import contextlib
import copy
import io
import json
import os
import sys
import tempfile

from torch_test import infer_path, run_infer

import numpy as np
import torch

from nystream_ref import export, reference, safetensors_io, train
from nystream_ref import model as nystream_model
from nystream_ref.model import Config, NystreamModel, random_model

FLOAT64 = 1e-9  # float64 agreement (observed <= 2e-12; exact pinv at cond(A) ~1e4)
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def perturbed(model, layer=0):
    """A copy with one key weight of `layer` moved by 1e-6: the negative control."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.layers[layer].attention.qkv.weight[model.c.embed_dim, 0] += 1e-6
    return other


def config(**extra):
    base = dict(window=8, landmarks=4, input_dim=5, embed_dim=16, heads=2, ff_dim=32,
                classes=["a", "b", "c"], positional_period=19, assembly="stacked")
    base.update(extra)
    return Config(**base)


def random_stream(c, steps, seed, dropped=()):
    x = torch.randn(steps, c.input_dim, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    valid = torch.ones(steps, dtype=torch.bool)
    valid[list(dropped)] = False
    return x, valid


# ---------------------------------------------------------------- 1

@contextlib.contextmanager
def banded_settings(floor=None, block_windows=None):
    """Attention.banded with another BANDED_SUM_FLOOR (inf: every row's own
    softmax maxima, its fallback) or BANDED_BLOCK_WINDOWS (1: blocks of n rows,
    the last one padded)."""
    saved = nystream_model.BANDED_SUM_FLOOR, nystream_model.BANDED_BLOCK_WINDOWS
    if floor is not None:
        nystream_model.BANDED_SUM_FLOOR = floor
    if block_windows is not None:
        nystream_model.BANDED_BLOCK_WINDOWS = block_windows
    try:
        yield
    finally:
        nystream_model.BANDED_SUM_FLOOR, nystream_model.BANDED_BLOCK_WINDOWS = saved


def training_forward(model, x, valid):
    """The training forward on the receptive field ending at every step."""
    span = model.c.receptive_field
    tokens, times, ok = reference.windows_for(span, torch.where(valid[:, None], x, 0.0), valid)
    with torch.no_grad():
        return torch.cat([model(tokens[i:i + 256], times[i:i + 256], ok[i:i + 256])
                          for i in range(0, len(tokens), 256)])


def forward_equals_reference():
    for blocks in (2, 3, 5):
        for extra in (dict(landmark_schedule="fixed"),
                      dict(landmark_schedule="fixed", pinv="exact", window=12, landmarks=3),
                      dict(attention="softmax")):
            if blocks == 5 and extra.get("pinv") == "exact":
                continue
            c = config(blocks=blocks, **extra)
            model = random_model(c, seed=10 + blocks)
            steps = 20 * c.window + 5
            x, valid = random_stream(c, steps, blocks, dropped=(3, 2 * c.window, 2 * c.window + 1))
            want = reference.stream_logits(model, x, valid)
            err = float((training_forward(model, x, valid) - want)[valid].abs().max())
            control = float((training_forward(perturbed(model), x, valid) - want)[valid]
                            .abs().max())
            variants = []
            for settings in (dict(floor=float("inf")), dict(block_windows=1),
                             dict(floor=float("inf"), block_windows=1)):
                with banded_settings(**settings):
                    variants.append(float((training_forward(model, x, valid) - want)[valid]
                                          .abs().max()))
            check(max([err] + variants) < FLOAT64 < control,
                  f"blocks {blocks} {extra}: training forward (R = {c.receptive_field} tokens) = "
                  f"reference at all {steps} steps, max|err| {err:.1e}; per-row maxima, blocks of "
                  f"n rows, both: {max(variants):.1e} (tolerance {FLOAT64:.0e}; a 1e-6 weight "
                  f"change: {control:.1e})")
    # Landmark scores spread by hundreds: band sums of exp(score - block max)
    # underflow, so the rows take their own maxima, and still match.
    c = config(blocks=3, landmark_schedule="fixed")
    model = random_model(c, seed=12)
    with torch.no_grad():
        for layer in model.layers:
            layer.attention.landmark_queries *= 100
    x, valid = random_stream(c, 10 * c.window, 5)
    want = reference.stream_logits(model, x, valid)
    calls = []
    original = nystream_model.banded_matrix
    nystream_model.banded_matrix = lambda *a: calls.append(1) or original(*a)
    try:
        err = float((training_forward(model, x, valid) - want).abs().max())
    finally:
        nystream_model.banded_matrix = original
    check(err < FLOAT64 and calls, f"landmark scores x100: per-row maxima taken ({len(calls)} "
                                   f"layer calls), max|err| {err:.1e}")
    # float32 training: a row whose band sum is 3e-20 (its inputs score 47 below
    # the newest input's) takes its own maxima, so the backward stays finite; on
    # the fast path 1/sum^2 overflowed and training went NaN.
    c = config(window=8, landmarks=1, input_dim=4, embed_dim=4, heads=1, ff_dim=8,
               landmark_schedule="fixed")
    attention = nystream_model.Attention(c)
    with torch.no_grad():
        attention.qkv.weight.copy_(torch.cat([torch.eye(4)] * 3))
        attention.qkv.bias.zero_()
        attention.landmark_queries.copy_(torch.tensor([[1.0, 0, 0, 0]]))
        attention.landmark_keys.copy_(torch.tensor([[1.0, 0, 0, 0]]))
    x = torch.zeros(1, 2 * c.window - 1, 4)
    x[..., 1] = 1.0
    x[0, -1, 0] = 47 / c.head_dim ** -0.25  # k scaled by d^-1/4: landmark score 47
    x.requires_grad_(True)
    landmarks = tuple(t.unsqueeze(0) for t in attention.fixed_landmarks())
    grads = []
    for floor in (None, 1e-20):
        x.grad = None
        with banded_settings(floor=floor):
            attention.banded(x, torch.ones(1, x.shape[1], dtype=torch.bool), landmarks,
                             c.window).sum().mul(1000).backward()
        grads.append(bool(torch.isfinite(x.grad).all()))
    check(grads == [True, False], f"float32 backward, a band sum of 3e-20: gradients finite "
                                  f"{grads[0]} (control, fast path taken: {grads[1]})")
    # The forward takes exactly the receptive field: older tokens do not matter.
    c = config(blocks=3, landmark_schedule="fixed")
    model = random_model(c, seed=3)
    x, valid = random_stream(c, 60, 4)
    tokens, times, ok = reference.windows_for(c.receptive_field + 5, x, valid)
    with torch.no_grad():
        longer = model(tokens, times, ok)
        older = tokens.clone()
        older[:, :5] += 1.0
        changed = model(older, times, ok)
        nearer = tokens.clone()
        nearer[:, 5] += 1.0  # the oldest token of the receptive field
        moved = model(nearer, times, ok)
    check(torch.equal(longer, changed) and float((moved - longer)[40:].abs().max()) > 1e-3,
          f"receptive field {c.receptive_field} = L(n-1)+1: tokens before it do not change the "
          f"logits, its oldest does")


# ---------------------------------------------------------------- 2

def literal_stream(model, features, valid, fresh=False):
    """The spec, step by step. fresh: continual landmarks of the window ending at
    t instead of at the last completion (a negative control)."""
    c = model.c
    n = c.window
    inputs = [[] for _ in model.layers]
    pad = (torch.zeros(c.embed_dim, dtype=model.dtype), False)

    def window(seq, end):
        items = [seq[i] if i >= 0 else pad for i in range(end - n + 1, end + 1)]
        return (torch.stack([v for v, _ in items])[None],
                torch.tensor([ok for _, ok in items])[None])

    out = []
    with torch.no_grad():
        for t in range(features.shape[0]):
            token = torch.where(valid[t], features[t], torch.zeros((), dtype=features.dtype))
            x = model.embed(token[None], torch.tensor([t]))[0]
            for l, layer in enumerate(model.layers):
                inputs[l].append((x, bool(valid[t])))
                if c.fixed:
                    lm = tuple(p.unsqueeze(0) for p in layer.attention.fixed_landmarks())
                elif c.continual:
                    done = t if fresh else reference.last_completion(t, c.segment_length)
                    if done < 0:
                        zero = torch.zeros(1, c.heads, c.landmarks, c.head_dim, dtype=model.dtype)
                        lm = (zero, zero)
                    else:
                        lm = layer.attention.window_landmarks(*window(inputs[l], done))
                else:
                    lm = None
                x = layer(*window(inputs[l], t), lm, 1)[0, 0]
            out.append(model.classifier(model.final_norm(x)))
    return torch.stack(out)


def reference_equals_literal_stream():
    for window, landmarks in ((8, 4), (12, 3)):
        for blocks in (2, 3):
            for extra in (dict(), dict(pinv="exact"), dict(landmark_schedule="fixed"),
                          dict(attention="softmax")):
                c = config(window=window, landmarks=landmarks, positional_period=2 * window + 3,
                           blocks=blocks, **extra)
                model = random_model(c, seed=blocks + window)
                steps = 16 * window + 5
                x, valid = random_stream(c, steps, window, dropped=(2, 3 * window, 3 * window + 1))
                want = reference.stream_logits(model, x, valid)
                err = float((literal_stream(model, x, valid) - want)[valid].abs().max())
                control = float((literal_stream(perturbed(model, blocks - 1), x, valid) - want)
                                [valid].abs().max())
                note = ""
                if c.continual:
                    fresh = float((literal_stream(model, x, valid, fresh=True) - want)[valid]
                                  .abs().max())
                    control = min(control, fresh)
                    cond = float(reference.kernel_condition(model, x, valid).max())
                    note = f", fresh landmarks {fresh:.1e}, max cond(A) {cond:.0e}"
                check(err < FLOAT64 < control,
                      f"n {window} m {landmarks} blocks {blocks} {extra}: reference = literal "
                      f"stream over {steps} steps, max|err| {err:.1e} (1e-6 weight change in the "
                      f"last layer: {control:.1e}{note})")


# ---------------------------------------------------------------- 3

def one_block_is_the_same_model():
    for extra in (dict(), dict(pinv="exact"), dict(landmark_schedule="fixed"),
                  dict(attention="softmax")):
        old = Config(window=12, landmarks=3, input_dim=5, embed_dim=16, heads=2, ff_dim=32,
                     classes=["a", "b"], positional_period=29, **extra)
        new = Config(**{**old.__dict__, "assembly": "stacked"})
        retro, stacked = random_model(old, seed=2), random_model(new, seed=2)
        x, valid = random_stream(old, 10 * old.window + 5, 2, dropped=(5, 40))
        want = reference.stream_logits(retro, torch.where(valid[:, None], x, 0.0), valid)
        err = float((reference.stream_logits(stacked, x, valid) - want)[valid].abs().max())
        control = float((reference.stream_logits(perturbed(stacked), x, valid) - want)[valid]
                        .abs().max())
        check(err < 1e-12 < control and new.receptive_field == old.receptive_field,
              f"blocks 1 {extra}: stacked = retroactive, max|err| {err:.1e} (tolerance 1e-12; "
              f"a 1e-6 weight change: {control:.1e})")


# ---------------------------------------------------------------- 4

def model_files(directory):
    path = os.path.join(directory, "m.safetensors")
    for extra in (dict(blocks=3, landmark_schedule="fixed"),
                  dict(blocks=2, pinv="exact"),
                  dict(blocks=4, attention="softmax", output_projection=False,
                       output_activation="softmax")):
        c = config(**extra)
        model = random_model(c, seed=6, dtype=torch.float32)
        export.save(model, path, name="stacked")
        back = export.load(path, dtype=torch.float32)
        same = all(torch.equal(a, b) for a, b in
                   zip(model.state_dict().values(), back.state_dict().values()))
        arch = json.loads(safetensors_io.read(path)[1]["nystream"])["architecture"]
        x = torch.randn(50, c.input_dim)
        check(back.c == c and back.c.assembly == "stacked" and arch["assembly"] == "stacked"
              and same and torch.equal(reference.stream_logits(model, x),
                                       reference.stream_logits(back, x)),
              f"round trip {extra}: assembly written and read back, tensors and outputs identical")
        layers = {int(k.split(".")[1]) for k in safetensors_io.read(path)[0] if k.startswith("layers.")}
        check(layers == set(range(c.blocks)), f"  tensors of layers 0 .. {c.blocks - 1}")
    # The key is always written; a file without it (written before it existed) is retroactive.
    c = Config(window=8, landmarks=4, input_dim=5, embed_dim=16, heads=2, ff_dim=32,
               classes=["a", "b", "c"], blocks=2)
    model = random_model(c, seed=8, dtype=torch.float32)
    export.save(model, path)
    tensors, meta = safetensors_io.read(path)
    doc = json.loads(meta["nystream"])
    check(doc["architecture"].get("assembly") == "retroactive",
          "the default assembly is written explicitly")
    del doc["architecture"]["assembly"]
    safetensors_io.write(path, tensors, {"nystream": json.dumps(doc)})
    old = export.load(path, dtype=torch.float32)
    x = torch.randn(30, 5)
    check(old.c == c and torch.equal(reference.stream_logits(old, x),
                                     reference.stream_logits(model, x)),
          "a file without `assembly` loads as retroactive, unchanged")
    # A stacked file with 17 blocks, or a retroactive one with 3, is refused.
    for assembly, blocks in (("stacked", 17), ("retroactive", 3), ("sideways", 1)):
        doc["architecture"].update(assembly=assembly, blocks=blocks)
        safetensors_io.write(path, tensors, {"nystream": json.dumps(doc)})
        try:
            export.load(path)
            check(False, f"assembly {assembly} blocks {blocks}: accepted")
        except ValueError as error:
            check(True, f"assembly {assembly} blocks {blocks}: refused ({error})")
    # Checkpoints keep it too.
    c = config(blocks=3, landmark_schedule="fixed")
    model = random_model(c, seed=9, dtype=torch.float32)
    ckpt = os.path.join(directory, "ckpt.pt")
    train.save_checkpoint(model, ckpt)
    check(train.load_checkpoint(ckpt).c == c, "checkpoint round trip keeps assembly")


# ---------------------------------------------------------------- 5

def windows_are_stream_states():
    """As test_train_smoke.py: rebuild each sampled window as a stream at its
    absolute times (filler elsewhere) and compare with the reference there."""
    for extra in (dict(blocks=2, landmark_schedule="fixed"), dict(blocks=3, attention="softmax"),
                  dict(blocks=3, landmark_schedule="fixed")):
        c = config(**extra)
        model = random_model(c, seed=4)
        g = torch.Generator().manual_seed(1)
        pairs = [(torch.randn(length, c.input_dim, generator=g).numpy(),
                  np.zeros((length, 3), np.float32)) for length in (60, 9, 120)]
        data = train.Sequences(pairs)
        worst, control, starts, lengths = 0.0, 0.0, 0, set()
        for _ in range(3):
            batch = data.sample(c, 24, g, start_fraction=0.3)
            train.augment(model, batch, g, noise=0.3, bands=5, shift=1, mask=2)
            tokens, times, valid = batch["window"]
            lengths.add(tokens.shape[1])
            with torch.no_grad():
                got = train.forward_batch(model, batch)
                shifted = model(tokens.double(), times + 1, valid)  # control: one step late
            for i in range(len(got)):
                t_end = int(times[i, -1])
                stream = torch.randn(t_end + 1, c.input_dim, generator=g, dtype=torch.float64)
                for j in range(tokens.shape[1]):
                    if valid[i, j]:
                        stream[times[i, j]] = tokens[i, j].double()
                starts += bool((~valid[i]).any())
                want = reference.stream_logits(model, stream, steps=[t_end])[0]
                worst = max(worst, float((got[i] - want).abs().max()))
                control = max(control, float((shifted[i] - want).abs().max()))
        check(worst < FLOAT64 < control and lengths == {c.receptive_field},
              f"{extra}: training windows ({c.receptive_field} tokens) = stream states at their "
              f"time (max |err| {worst:.1e}; {starts} stream-start windows; positions one step "
              f"late: {control:.1e})")


def kmeans_per_layer():
    """init_fixed_landmarks clusters each layer's own inputs: the points of layer l
    are q^ / k^ of the rows of the receptive field that layer sees."""
    c = config(blocks=3, landmark_schedule="fixed")
    model = random_model(c, seed=5, dtype=torch.float32)
    data = train.Sequences(train.synthetic(2, 200, c.input_dim, 3, seed=1))
    seen = []
    original = train.kmeans

    def recording(points, k, generator, iterations=25):
        seen.append(len(points))
        return original(points, k, generator, iterations)

    train.kmeans = recording
    try:
        batch = data.sample(c, 16, torch.Generator().manual_seed(2), start_fraction=0.0)
        train.init_fixed_landmarks(model, data, torch.Generator().manual_seed(2), windows=16)
    finally:
        train.kmeans = original
    valid = batch["window"][2]
    want = [int(valid[:, -(c.stacked_rows(l) + c.window - 1):].sum())
            for l in range(c.blocks) for _ in range(2 * c.heads)]
    finite = all(torch.isfinite(layer.attention.landmark_keys).all() for layer in model.layers)
    check(seen == want and finite,
          f"k-means per layer and head on its own rows: {seen[::2 * c.heads]} points for layers "
          f"0 .. {c.blocks - 1}")


def training_runs(infer, directory):
    numbers = {}
    for name, extra in {"stacked-fixed-2blocks": ["--schedule", "fixed", "--blocks", "2"],
                        "stacked-softmax-3blocks": ["--attention", "softmax", "--blocks", "3"]
                        }.items():
        out = os.path.join(directory, name + ".safetensors")
        summary_path = os.path.join(directory, name + ".json")
        code = train.main(["--smoke", "--steps", "100", "--assembly", "stacked", "--out", out,
                           "--summary", summary_path] + extra)
        s = json.load(open(summary_path))
        numbers[name] = {k: s[k] for k in ("steps", "seconds", "loss_first10", "loss_last10",
                                           "val_mAP_before", "val_mAP_after")}
        check(code == 0 and s["loss_last10"] < 0.7 * s["loss_first10"] and
              s["val_mAP_after"] > s["val_mAP_before"],
              f"{name}: train --smoke, loss {s['loss_first10']:.3f} -> {s['loss_last10']:.3f}, "
              f"validation mAP {s['val_mAP_before']:.3f} -> {s['val_mAP_after']:.3f}")
        model = export.load(out)
        check(model.c.stacked and model.c.blocks == int(extra[-1]), f"{name}: export loads stacked")
        if infer:
            x = (np.random.default_rng(5).standard_normal((200, model.c.input_dim)) * 1.5 + 0.5
                 ).astype(np.float32)
            path = os.path.join(directory, "x.npy")
            np.save(path, x)
            _, status, logits = run_infer(infer, out, path)
            err = float(np.abs(logits - reference.stream_logits(model, torch.from_numpy(x))
                               .numpy()).max())
            check(all(s == "ok" for s in status) and err < 2e-4,
                  f"{name}: nystream-infer runs the export (max |logit err| {err:.1e})")
    print(json.dumps(numbers))
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            train.main(["--smoke", "--steps", "2", "--assembly", "stacked", "--blocks", "2"])
        refused = False
    except SystemExit as error:
        refused = error.code == 2 and "continual landmarks" in stderr.getvalue()
    check(refused, "train --assembly stacked with continual landmarks: a clear error")


# ---------------------------------------------------------------- 6

def crosscheck(infer, directory):
    """C++ stream vs the reference on exported stacked models (test_crosscheck.py)."""
    import test_crosscheck as cc
    cases = [(config(window=16, landmarks=4, positional_period=35, blocks=b, **e), ())
             for b in (2, 3) for e in (dict(landmark_schedule="fixed"), dict(),
                                       dict(attention="softmax"))]
    cases += [(config(window=16, landmarks=4, positional_period=35, blocks=2, pinv="exact"), ()),
              (config(window=12, landmarks=3, blocks=4, landmark_schedule="fixed"), ()),
              (config(window=16, landmarks=4, positional_period=35, blocks=3), (3, 40, 41, 77))]
    for i, (c, nonfinite) in enumerate(cases):
        errors, model, x, valid, logits = cc.cross_check(infer, c, directory, 200 + i, nonfinite)
        tolerance = np.full(len(errors), cc.ITERATIVE_TOLERANCE)
        if c.pinv == "exact" and c.attention == "nystrom":
            cond = reference.kernel_condition(model, x, torch.from_numpy(valid)).numpy()
            tolerance = np.minimum(cc.EXACT_TOLERANCE * np.maximum(1.0, cond / cc.EXACT_CONDITION),
                                   cc.EXACT_CAP)
        at = int(errors.argmax())
        note = ""
        if c.blocks == 2 and not nonfinite:
            # Control: the same weights assembled retroactively (the second layer over
            # the first layer's outputs recomputed on the newest window) must differ.
            retro = NystreamModel(Config(**{**c.__dict__, "assembly": "retroactive"})).double()
            retro.set_normalization(model.input_mean, model.input_std)
            retro.load_state_dict(model.state_dict())
            gap = np.abs(reference.stream_logits(retro, x).numpy() - logits)[valid].max()
            failures_before = len(failures)
            check(gap > 10 * tolerance.max(), f"  control: the retroactive model differs by "
                                              f"{gap:.2e}")
            note = "" if len(failures) == failures_before else " (control failed)"
        check(float((errors / tolerance).max()) < 1,
              f"C++ stacked {cc.describe(c)}{' +non-finite' if nonfinite else ''}: "
              f"max|err| {errors[at]:.2e} at step {at} (tolerance {tolerance[at]:.1e}){note}")


def main():
    torch.set_num_threads(1)
    forward_equals_reference()
    reference_equals_literal_stream()
    one_block_is_the_same_model()
    infer = infer_path()
    with tempfile.TemporaryDirectory() as d:
        model_files(d)
        windows_are_stream_states()
        kmeans_per_layer()
        training_runs(infer, d)
        if infer:
            crosscheck(infer, d)
    print("FAIL" if failures else "PASS", f"({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
