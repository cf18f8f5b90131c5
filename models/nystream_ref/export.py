"""Model files (docs/model-format.md): write a NystreamModel as safetensors, read one
back, and a command line:

  python3 -m nystream_ref.export random --out FILE [architecture options] [--seed S]
      a random-weight model (every tensor random, input normalisation included)
  python3 -m nystream_ref.export checkpoint --checkpoint CKPT.pt --out FILE
      a model trained by nystream_ref.train (its torch.save checkpoint)
  python3 -m nystream_ref.export info FILE
      print the metadata and tensor shapes
  python3 -m nystream_ref.export golden --model FILE --steps N --seed S \
          --features X.npy --logits Y.npy
      a random stream (float32 [N, D]) and the reference logits the continual
      engine must produce at every step (float32 [N, C], computed in float64)

Run from models/ or with PYTHONPATH=models, with /usr/bin/python3.
"""
import argparse
import datetime
import json
import sys

import numpy as np
import torch

from . import safetensors_io
from .model import MAX_STACKED_BLOCKS, Config, NystreamModel, random_model

FORMAT_VERSION = 1
_ARCH_KEYS = {f for f in Config.__dataclass_fields__ if f != "classes"}


def state_tensors(model: NystreamModel):
    """name -> float32 numpy array, exactly the tensors the format lists."""
    c = model.c
    t = {}

    def put(name, value):
        t[name] = value.detach().to(torch.float32).cpu().numpy()

    put("input.weight", model.input.weight)
    put("input.bias", model.input.bias)
    put("positions", model.positions)
    for l, layer in enumerate(model.layers):
        p = f"layers.{l}."
        a = layer.attention
        put(p + "attention.qkv.weight", a.qkv.weight)
        put(p + "attention.qkv.bias", a.qkv.bias)
        if a.out is not None:
            put(p + "attention.out.weight", a.out.weight)
            put(p + "attention.out.bias", a.out.bias)
        if c.fixed:
            put(p + "attention.landmark_queries", a.landmark_queries)
            put(p + "attention.landmark_keys", a.landmark_keys)
        for name in ("norm1", "ff1", "ff2", "norm2"):
            module = getattr(layer, name)
            put(p + name + ".weight", module.weight)
            put(p + name + ".bias", module.bias)
    for name in ("final_norm", "classifier"):
        module = getattr(model, name)
        put(name + ".weight", module.weight)
        put(name + ".bias", module.bias)
    if model.stem is not None:
        for i, conv in enumerate(model.stem.conv):
            put(f"stem.conv.{i}.weight", conv.weight)
            put(f"stem.conv.{i}.bias", conv.bias)
        put("stem.proj.weight", model.stem.proj.weight)
    return t


def metadata_document(model: NystreamModel, name=None, modality=None, features=None,
                      provenance=None):
    info = model.info
    doc = {
        "format": "nystream-model",
        "format_version": FORMAT_VERSION,
        "name": name or info.get("name", "unnamed"),
        "modality": modality or info.get("modality", "features"),
        "architecture": model.c.architecture(),
        "classes": list(model.c.classes),
        "features": features or info.get("features",
                                          {"extractor": "identity", "version": 1, "params": {}}),
        "provenance": dict(info.get("provenance", {})),
    }
    if provenance:
        doc["provenance"].update(provenance)
    doc["provenance"].setdefault("tool", "nystream_ref.export")
    doc["provenance"].setdefault("date", datetime.datetime.now(datetime.timezone.utc)
                                 .replace(microsecond=0).isoformat())
    if model.input_mean is not None:
        doc["input_normalization"] = {
            "mean": [float(x) for x in model.input_mean.to(torch.float32)],
            "std": [float(x) for x in model.input_std.to(torch.float32)],
        }
    return doc


def save(model: NystreamModel, path, **info):
    """Writes the model file; info: name, modality, features, provenance."""
    doc = metadata_document(model, **info)
    safetensors_io.write(path, state_tensors(model), {"nystream": json.dumps(doc)})


def load(path, dtype=torch.float64):
    """Reads a model file into a NystreamModel (float64 by default: the reference)."""
    tensors, metadata = safetensors_io.read(path)
    if "nystream" not in metadata:
        raise ValueError(f"{path}: no 'nystream' metadata")
    doc = json.loads(metadata["nystream"])
    if doc.get("format") != "nystream-model" or doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a version {FORMAT_VERSION} nystream-model")
    arch = {k: v for k, v in doc["architecture"].items() if k in _ARCH_KEYS}
    config = Config(classes=doc["classes"], **arch)
    model = NystreamModel(config).to(dtype)
    expected = state_tensors(model)
    if set(expected) != set(tensors):
        raise ValueError(f"{path}: tensors differ from the architecture: missing "
                         f"{sorted(set(expected) - set(tensors))}, extra "
                         f"{sorted(set(tensors) - set(expected))}")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, value in tensors.items():
            target = params[key]
            if tuple(target.shape) != value.shape:
                raise ValueError(f"{path}: {key} has shape {value.shape}, expected "
                                 f"{tuple(target.shape)}")
            target.copy_(torch.from_numpy(value.astype(np.float64)))
    norm = doc.get("input_normalization")
    if norm:
        model.set_normalization(torch.tensor(norm["mean"], dtype=torch.float64),
                                torch.tensor(norm["std"], dtype=torch.float64))
    model.info = {k: doc[k] for k in ("name", "modality", "features", "provenance") if k in doc}
    return model


def add_architecture_args(parser):
    a = parser.add_argument
    a("--window", type=int, default=16)
    a("--landmarks", type=int, default=4)
    a("--input-dim", type=int, default=8)
    a("--embed-dim", type=int, default=16)
    a("--heads", type=int, default=2)
    a("--ff-dim", type=int, default=32)
    a("--blocks", type=int, default=1, choices=range(1, MAX_STACKED_BLOCKS + 1),
      metavar="{1..%d}" % MAX_STACKED_BLOCKS,
      help="retroactive assembly: 1 or 2; stacked: 1 .. %d" % MAX_STACKED_BLOCKS)
    a("--assembly", default="retroactive", choices=("retroactive", "stacked"),
      help="retroactive: a retroactive first layer then a single-output one (blocks 2); "
           "stacked: causal single-output layers, each over the last n outputs of the one "
           "below (algorithm.md 7; nystream_ref.train trains it with --schedule fixed or "
           "--attention softmax, not continual landmarks)")
    a("--classes", type=int, default=3, help="number of classes (named class0 ..)")
    a("--class-names", default=None, help="comma-separated names (overrides --classes)")
    a("--attention", default="nystrom", choices=("nystrom", "softmax"))
    a("--schedule", default="continual", choices=("continual", "fixed"))
    a("--pinv", default="iterative", choices=("iterative", "exact"))
    a("--pinv-iterations", type=int, default=6)
    a("--period", type=int, default=None, help="positional period P (default: window)")
    a("--activation", default="sigmoid", choices=("sigmoid", "softmax"))
    a("--no-output-projection", action="store_true")
    a("--linear-inputs", type=int, default=None,
      help="how many leading feature values the linear input projection reads (default: all; "
           "the rest only feed the stem)")
    a("--stem-json", default=None,
      help="a convolutional stem, `architecture.stem` of docs/model-format.md: a JSON object "
           "or a file holding one, e.g. '{\"input_offset\": 120, \"input_shape\": [2, 24, 32], "
           "\"layers\": [{\"channels\": 16, \"kernel\": [3, 3], \"stride\": [2, 2]}], "
           "\"pool_strips\": 3}'")


def config_from_args(args):
    names = (args.class_names.split(",") if args.class_names
             else [f"class{i}" for i in range(args.classes)])
    return Config(window=args.window, landmarks=args.landmarks, input_dim=args.input_dim,
                  embed_dim=args.embed_dim, heads=args.heads, ff_dim=args.ff_dim,
                  classes=names, blocks=args.blocks, assembly=args.assembly,
                  attention=args.attention,
                  landmark_schedule=args.schedule, pinv=args.pinv,
                  pinv_iterations=args.pinv_iterations, positional_period=args.period,
                  output_activation=args.activation,
                  output_projection=not args.no_output_projection,
                  linear_inputs=args.linear_inputs, stem=stem_from_arg(args.stem_json))


def stem_from_arg(value):
    """--stem-json: None, a JSON object, or the name of a file holding one."""
    if value is None:
        return None
    if not value.lstrip().startswith("{"):
        try:
            with open(value) as f:
                value = f.read()
        except OSError as error:
            raise ValueError(f"--stem-json: {error}") from None
    return json.loads(value)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m nystream_ref.export",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("random", help="write a random-weight model")
    add_architecture_args(r)
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--name", default="random")
    r.add_argument("--no-normalization", action="store_true")
    r.add_argument("--date", default=None, help="provenance date (default: now)")
    r.add_argument("--out", required=True)
    k = sub.add_parser("checkpoint", help="export a nystream_ref.train checkpoint")
    k.add_argument("--checkpoint", required=True)
    k.add_argument("--out", required=True)
    v = sub.add_parser("convert", help="rewrite a model file's linear weights as F16 or BF16 "
                       "(the engine then keeps them 16-bit) or back to F32")
    v.add_argument("--dtype", required=True, choices=("f32", "f16", "bf16"))
    v.add_argument("file")
    v.add_argument("--out", required=True)
    i = sub.add_parser("info", help="print a model file's metadata and tensors")
    i.add_argument("file")
    g = sub.add_parser("golden", help="write a random stream and its reference logits")
    g.add_argument("--model", required=True)
    g.add_argument("--steps", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--features", required=True)
    g.add_argument("--logits", required=True)
    args = parser.parse_args(argv)

    if args.command == "random":
        try:
            config = config_from_args(args)
        except ValueError as error:
            r.error(str(error))
        model = random_model(config, seed=args.seed)
        if args.no_normalization:
            model.set_normalization(None, None)
        provenance = {"data": "none: random weights",
                      "tool": "nystream_ref.export random --seed %d" % args.seed}
        if args.date:
            provenance["date"] = args.date
        save(model, args.out, name=args.name, provenance=provenance)
    elif args.command == "checkpoint":
        from .train import load_checkpoint
        model = load_checkpoint(args.checkpoint)
        save(model, args.out)
    elif args.command == "convert":
        tensors, metadata = safetensors_io.read(args.file)
        # The linear layers' matrices (2-D "*.weight"); the rest, the stem
        # included, stays F32 (the engine keeps a stem float32).
        dtype = args.dtype.upper()
        dtypes = {name: dtype for name, t in tensors.items()
                  if name.endswith(".weight") and t.ndim == 2 and not name.startswith("stem.")}
        safetensors_io.write(args.out, tensors, metadata, dtypes)
    elif args.command == "golden":
        from .reference import stream_logits
        model = load(args.model)
        x = np.random.default_rng(args.seed).standard_normal(
            (args.steps, model.c.input_dim)).astype(np.float32)
        logits = stream_logits(model, torch.from_numpy(x))
        np.save(args.features, x)
        np.save(args.logits, logits.numpy().astype(np.float32))
        print(f"wrote {args.features}, {args.logits}", file=sys.stderr)
        return 0
    else:
        tensors, metadata = safetensors_io.read(args.file)
        print(json.dumps(json.loads(metadata.get("nystream", "{}")), indent=2))
        for name in sorted(tensors):
            print(f"{name}: {list(tensors[name].shape)}")
        return 0
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
