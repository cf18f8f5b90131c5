"""safetensors_io and export: byte layout, round trips, a loader's refusals, and the
committed test models in models/test/ (their tensors are exactly the format's list,
and their golden logits are the reference's).

Usage: test_safetensors.py [NYSTREAM-INFER]  (with the CLI: the committed models'
golden streams through nystream-infer, 2e-4 as in test_crosscheck.py)
"""
import json
import os
import struct
import sys
import tempfile

from torch_test import infer_path, run_infer

import numpy as np
import torch

from nystream_ref import export, reference, safetensors_io
from nystream_ref.model import Config, random_model

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "test")
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def expect_error(function, what):
    try:
        function()
    except ValueError as error:
        check(True, f"{what}: refused ({error})")
        return
    check(False, f"{what}: accepted")


def main():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        # Layout by hand: 8-byte little-endian length, JSON, aligned data, row-major.
        path = os.path.join(d, "t.safetensors")
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        b = np.array([-1.5], dtype=np.float32)
        safetensors_io.write(path, {"b": b, "a": a}, {"k": "v"})
        raw = open(path, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
        check((8 + n) % 8 == 0, "data buffer 8-byte aligned (header padded with spaces)")
        check(header["a"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "entry of a")
        check(header["b"]["data_offsets"] == [24, 28], "entry of b follows a")
        check(header["__metadata__"] == {"k": "v"}, "metadata")
        check(raw[8 + n:] == a.tobytes() + b.tobytes(), "row-major little-endian data")
        tensors, meta = safetensors_io.read(path)
        check(np.array_equal(tensors["a"], a) and np.array_equal(tensors["b"], b) and
              meta == {"k": "v"}, "read gives back what was written")
        # F16 is read (and widened by callers); a loader's refusals.
        def forge(name, entries, data):
            text = json.dumps(entries).encode()
            p = os.path.join(d, name)
            open(p, "wb").write(struct.pack("<Q", len(text)) + text + data)
            return p
        half = np.array([1.0, 2.5], dtype="<f2")
        p = forge("f16", {"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}},
                  half.tobytes())
        check(np.array_equal(safetensors_io.read(p)[0]["h"].astype(np.float32), [1.0, 2.5]), "F16 read")
        expect_error(lambda: safetensors_io.read(forge("over", {
            "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12))),
            "overlapping tensors")
        expect_error(lambda: safetensors_io.read(forge("size", {
            "x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8))),
            "range not matching the shape")
        expect_error(lambda: safetensors_io.read(forge("past", {
            "x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8))),
            "range past the end")
        long_header = os.path.join(d, "long")
        open(long_header, "wb").write(struct.pack("<Q", 1 << 40) + b"{}")
        expect_error(lambda: safetensors_io.read(long_header), "header length past the file")

        # Model round trip: every configuration family, bit-exact float32 weights.
        for extra in (dict(landmark_schedule="continual", blocks=1),
                      dict(landmark_schedule="fixed", blocks=2, pinv="exact"),
                      dict(attention="softmax", blocks=2, output_projection=False,
                           output_activation="softmax")):
            c = Config(window=12, landmarks=3, input_dim=5, embed_dim=8, heads=2, ff_dim=16,
                       classes=["x", "y"], positional_period=29, **extra)
            model = random_model(c, seed=5, dtype=torch.float32)
            p = os.path.join(d, "m.safetensors")
            export.save(model, p, name="rt", provenance={"metrics": {"mAP": 0.5}})
            back = export.load(p, dtype=torch.float32)
            same = all(torch.equal(x, y) for x, y in
                       zip(model.state_dict().values(), back.state_dict().values()))
            same &= torch.equal(model.input_mean, back.input_mean)
            check(same and back.c == c, f"round trip {extra}: config and every tensor identical")
            x = torch.randn(40, 5)
            check(torch.equal(reference.stream_logits(model, x), reference.stream_logits(back, x)),
                  f"round trip {extra}: identical outputs")
            meta = json.loads(safetensors_io.read(p)[1]["nystream"])
            check(meta["provenance"]["metrics"] == {"mAP": 0.5} and "date" in meta["provenance"]
                  and meta["features"]["extractor"] == "identity", "metadata document")
        # Stray tensors are refused.
        tensors, meta = safetensors_io.read(p)
        tensors["stray"] = np.zeros(1, np.float32)
        safetensors_io.write(p, tensors, meta)
        expect_error(lambda: export.load(p), "stray tensor")

        # A convolutional stem (issue 18): config and tensors round-trip; `convert`
        # leaves the stem F32 (the engine keeps it so); without a stem the
        # architecture has no stem or linear_inputs key (files stay as before).
        check("stem" not in c.architecture() and "linear_inputs" not in c.architecture(),
              "no stem: no new architecture keys")
        c = Config(window=12, landmarks=3, input_dim=5 + 2 * 6 * 4, embed_dim=8, heads=2,
                   ff_dim=16, classes=["x", "y"], linear_inputs=5,
                   stem={"input_offset": 5, "input_shape": [2, 6, 4], "pool_strips": 2,
                         "layers": [{"channels": 3, "kernel": [3, 2], "stride": [2, 1]}]})
        model = random_model(c, seed=6, dtype=torch.float32)
        p = os.path.join(d, "stem.safetensors")
        export.save(model, p)
        back = export.load(p, dtype=torch.float32)
        x = torch.randn(40, c.input_dim)
        same = all(torch.equal(a, b) for a, b in
                   zip(model.state_dict().values(), back.state_dict().values()))
        check(same and back.c == c and torch.equal(reference.stream_logits(model, x),
                                                   reference.stream_logits(back, x)),
              "round trip with a stem: config, every tensor and the outputs identical")
        half = os.path.join(d, "stem-f16.safetensors")
        export.main(["convert", "--dtype", "f16", p, "--out", half])
        with open(half, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        stem_types = {header[n]["dtype"] for n in header if n.startswith("stem.")}
        check(stem_types == {"F32"} and header["input.weight"]["dtype"] == "F16",
              f"convert --dtype f16 leaves the stem F32 ({stem_types})")

    # The committed test models: the format's exact tensor list, golden logits.
    infer = infer_path()
    for name in ("tiny-continual", "tiny-fixed-2blocks"):
        base = os.path.join(MODELS, name)
        tensors, _ = safetensors_io.read(base + ".safetensors")
        model = export.load(base + ".safetensors")
        c = model.c
        want = {"input.weight": [16, 8], "input.bias": [16], "positions": [35, 16],
                "final_norm.weight": [16], "final_norm.bias": [16],
                "classifier.weight": [3, 16], "classifier.bias": [3]}
        for l in range(c.blocks):
            p = f"layers.{l}."
            want.update({p + "attention.qkv.weight": [48, 16], p + "attention.qkv.bias": [48],
                         p + "attention.out.weight": [16, 16], p + "attention.out.bias": [16],
                         p + "ff1.weight": [32, 16], p + "ff1.bias": [32],
                         p + "ff2.weight": [16, 32], p + "ff2.bias": [16]})
            for norm in ("norm1", "norm2"):
                want.update({p + norm + ".weight": [16], p + norm + ".bias": [16]})
            if c.fixed:
                want.update({p + "attention.landmark_queries": [4, 16],
                             p + "attention.landmark_keys": [4, 16]})
        check({k: list(v.shape) for k, v in tensors.items()} == want,
              f"{name}: exactly the format's tensors and shapes")
        x = np.load(base + ".features.npy")
        golden = np.load(base + ".logits.npy")
        got = reference.stream_logits(model, torch.from_numpy(x)).numpy()
        check(np.abs(got - golden).max() < 1e-6, f"{name}: golden logits reproduce")
        if infer:
            _, status, logits = run_infer(infer, base + ".safetensors", base + ".features.npy")
            err = np.abs(logits - golden).max()
            check(all(s == "ok" for s in status) and err < 2e-4,
                  f"{name}: nystream-infer matches the golden logits (max |err| {err:.2e})")
    # 16-bit linear weights: `export convert` rounds the 2-D *.weight tensors to
    # F16 / BF16 (nearest even), leaves the rest F32; the engine keeps them 16-bit
    # and its logits stay within the rounding's reach of the float32 golden ones.
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(MODELS, "tiny-fixed-2blocks")
        original, _ = safetensors_io.read(base + ".safetensors")
        golden = np.load(base + ".logits.npy")
        for dtype, bound, logit_bound in (("f16", 2.0 ** -11, 5e-3), ("bf16", 2.0 ** -8, 5e-2)):
            out = os.path.join(tmp, f"tiny-{dtype}.safetensors")
            export.main(["convert", "--dtype", dtype, base + ".safetensors", "--out", out])
            with open(out, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
            sixteen = {n for n, e in header.items() if n != "__metadata__" and e["dtype"] != "F32"}
            linear = {n for n, t in original.items() if n.endswith(".weight") and t.ndim == 2}
            check(sixteen == linear and all(header[n]["dtype"] == dtype.upper() for n in sixteen),
                  f"convert --dtype {dtype}: exactly the linear weights are {dtype.upper()}")
            back, _ = safetensors_io.read(out)
            err = max(float(np.max(np.abs(back[n].astype(np.float64) - original[n])
                                   / np.maximum(np.abs(original[n]), 2.0 ** -14))) for n in linear)
            check(err <= bound, f"{dtype}: weights within {bound:.2g} relative (max {err:.2g})")
            check(all(np.array_equal(back[n], original[n]) for n in original if n not in linear),
                  f"{dtype}: every other tensor unchanged")
            if infer:
                _, status, logits = run_infer(infer, out, base + ".features.npy")
                err = float(np.abs(logits - golden).max())
                check(all(s == "ok" for s in status) and 0 < err < logit_bound,
                      f"{dtype}: nystream-infer within {logit_bound} of the float32 golden logits "
                      f"(max |err| {err:.2e})")

    print("FAIL" if failures else "PASS", f"({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
