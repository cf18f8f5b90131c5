"""Training on (features, per-token labels) sequences, as the continual engine will
run the model.

Each training example is one window of n tokens ending at a token e of a sequence,
with the loss on e's output (the single output the stream produces). The window
sits at a random absolute stream time t (positions t mod P recycle, so the model
learns shift invariance); with continual landmarks, the landmarks are the ones the
stream holds at t: the segment means of the window ending p = (t + 1) mod L steps
earlier (the stale-landmark states), computed in the same forward so gradients
reach them. A fraction of windows (--start-fraction) are the first steps of a
stream instead: time = index in the sequence, zero padding before it, landmarks
all zero until the first segment completes, exactly as a fresh StreamState.

Fixed landmarks: initialised per layer and head by k-means over the projected
queries and keys (q^, k^) of training windows, then fine-tuned with the rest.

Stacked assembly (--assembly stacked, blocks 1..16, algorithm.md 7): each example
is the receptive field of e, the L(n-1)+1 tokens ending at it (same random stream
offsets, stream starts and augmentation), through the causal layers; layer l's
fixed landmarks are k-means over its own inputs. Fixed landmarks or softmax
attention only (continual landmarks: an error).

Data: --data FILE.npz ..., each with `features` [T, D] float, `labels` [T, C] 0/1
(multi-label, sigmoid + BCE) or [T] class indices (exclusive, softmax + CE), and
optionally `classes` (names). --val FILE.npz ... are streamed through the exact
per-step reference for mAP (nystream_ref.evaluate).

  python3 -m nystream_ref.train --data a.npz b.npz --val c.npz --window 120 \\
      --landmarks 8 ... --steps 20000 --checkpoint ckpt.pt --out model.safetensors
  python3 -m nystream_ref.train --smoke --out smoke.safetensors   # seconds, synthetic
"""
import argparse
import ctypes
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import evaluate, export, reference
from .model import Config, NystreamModel, init_weights


STACKED_CONTINUAL = ("training the stacked assembly covers fixed landmarks (--schedule fixed) "
                     "and softmax attention (--attention softmax), not continual landmarks")


# ---------------------------------------------------------------- data

class Sequences:
    """Training sequences concatenated: features [N, D] and targets [N, C] (0/1
    floats, multi-label) or [N] (class indices)."""

    def __init__(self, pairs):
        self.features = torch.cat([torch.as_tensor(f, dtype=torch.float32) for f, _ in pairs])
        labels = [torch.as_tensor(np.asarray(l)) for _, l in pairs]
        self.exclusive = labels[0].dim() == 1
        self.labels = torch.cat(labels).long() if self.exclusive else torch.cat(labels).float()
        lengths = torch.tensor([len(f) for f, _ in pairs])
        self.starts = torch.cumsum(lengths, 0) - lengths
        self.lengths = lengths

    def sample(self, c: Config, batch, generator, start_fraction=0.1, fresh_landmarks=False):
        """A batch of training windows (see the module doc). Returns a dict.
        fresh_landmarks: the window's own segment means (a batch Nystromformer)."""
        if c.stacked and c.continual:
            raise ValueError(STACKED_CONTINUAL)
        n, L, P = c.window, c.segment_length if c.attention == "nystrom" else 1, c.positional_period
        seq = torch.multinomial(self.lengths.double(), batch, True, generator=generator)
        length = self.lengths[seq]
        rnd = lambda high: (torch.rand(batch, generator=generator, dtype=torch.float64)  # noqa
                            * high).long()
        at_start = torch.rand(batch, generator=generator) < start_fraction
        # Tokens before and including e, for a mid-stream window. Stacked: the
        # receptive field L(n-1)+1, the tokens the training forward takes.
        span = c.receptive_field if c.stacked else n
        need = span if c.stacked else n + L - 1
        at_start |= length < need
        end = torch.where(at_start, rnd(length.double()),
                          need - 1 + rnd((length - need + 1).clamp(min=1).double()))
        end = torch.minimum(end, length - 1)
        # Absolute time of e: in-sequence for stream starts, else a random offset
        # covering every position and landmark phase.
        t_end = torch.where(at_start, end, end + n + rnd(float(P * L)))
        shift = t_end - end  # time = index + shift
        window = self._window(seq, end, shift, span)
        out = {"window": window, "target": self.labels[self.starts[seq] + end]}
        if c.continual:
            phase = torch.zeros_like(t_end) if fresh_landmarks else (t_end + 1) % L
            done = t_end - phase  # last completion, < 0: no landmarks yet
            out["landmark_window"] = self._window(seq, end - phase, shift, n)
            out["have_landmarks"] = done >= 0
        return out

    def _window(self, seq, end, shift, n):
        index = end[:, None] - n + 1 + torch.arange(n)[None, :]
        times = index + shift[:, None]
        valid = (index >= 0) & (times >= 0)
        flat = self.starts[seq][:, None] + index.clamp(min=0)
        tokens = self.features[flat] * valid[..., None]
        return tokens, times.clamp(min=0), valid


def load_npz(paths):
    pairs, classes = [], None
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            pairs.append((z["features"], z["labels"]))
            if "classes" in z:
                classes = [str(x) for x in z["classes"]]
    return pairs, classes


def synthetic(sequences, length, dims, classes, seed):
    """Noise plus a class prototype while that class's event lasts (5..30 tokens):
    multi-label sequences a small model learns in a few hundred steps."""
    rng = np.random.default_rng(seed)
    prototypes = rng.standard_normal((classes, dims)) * 1.5
    pairs = []
    for _ in range(sequences):
        labels = np.zeros((length, classes), dtype=np.float32)
        for k in range(classes):
            t = int(rng.integers(0, 40))
            while t < length:
                d = int(rng.integers(5, 31))
                labels[t:t + d, k] = 1
                t += d + int(rng.integers(10, 60))
        features = rng.standard_normal((length, dims)) + labels @ prototypes + 0.5
        pairs.append((features.astype(np.float32), labels))
    return pairs


# ---------------------------------------------------------------- model pieces

def forward_batch(model: NystreamModel, batch):
    """Logits [B, C] of the windows' newest tokens, with the stream's landmarks."""
    tokens, times, valid = (t.to(model.input.weight.device) for t in batch["window"])
    landmarks = None
    if model.c.continual:
        stale = model.window_landmarks(*batch["landmark_window"])
        have = batch["have_landmarks"][:, None, None, None].to(model.dtype)
        landmarks = [(q * have, k * have) for q, k in stale]
    return model(tokens.to(model.dtype), times, valid, landmarks)


def loss_of(model, logits, target):
    if model.c.output_activation == "softmax":
        return F.cross_entropy(logits, target if target.dim() == 1 else target.argmax(-1))
    if target.dim() == 1:
        target = F.one_hot(target, model.c.num_classes).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target)


def kmeans(points, k, generator, iterations=25):
    """Lloyd's k-means with k-means++ seeding: [N, d] -> [k, d]."""
    first = torch.randint(len(points), (1,), generator=generator)
    centres = points[first]
    for _ in range(1, k):
        d2 = torch.cdist(points, centres).min(1).values ** 2
        if float(d2.sum()) == 0:
            pick = torch.randint(len(points), (1,), generator=generator)
        else:
            pick = torch.multinomial(d2, 1, generator=generator)
        centres = torch.cat([centres, points[pick]])
    for _ in range(iterations):
        assign = torch.cdist(points, centres).argmin(1)
        for j in range(k):
            members = points[assign == j]
            if len(members):
                centres[j] = members.mean(0)
    return centres


@torch.no_grad()
def init_fixed_landmarks(model: NystreamModel, data: Sequences, generator, windows=64):
    """k-means over projected q^ and k^ of training windows, per layer and head;
    layer l + 1 sees layer l's outputs computed with layer l's new landmarks."""
    c = model.c
    batch = data.sample(c, windows, generator, start_fraction=0.0)
    tokens, times, valid = batch["window"]
    x = model.embed(tokens.to(model.dtype), times)
    for l, layer in enumerate(model.layers):
        a = layer.attention
        if c.stacked:  # this layer's inputs: the rows of the receptive field it sees
            valid = valid[:, -x.shape[1]:]
        q, k, _ = a.project(x, valid)  # [B, h, rows, d]
        mask = valid.flatten()
        for h in range(c.heads):
            for source, target in ((q, a.landmark_queries), (k, a.landmark_keys)):
                points = source[:, h].reshape(-1, c.head_dim)[mask]
                centres = kmeans(points, c.landmarks, generator)
                target.view(c.landmarks, c.heads, c.head_dim)[:, h] = centres
        lm = tuple(t.unsqueeze(0) for t in a.fixed_landmarks())
        if c.stacked:
            x = layer.banded(x, valid, lm, c.stacked_rows(l))
        else:
            x = layer(x, valid, lm, x.shape[1])


@torch.no_grad()
def validate(model, pairs, threshold=0.5):
    """mAP and onset latency of the exact per-step stream outputs."""
    scores, labels = [], []
    for features, target in pairs:
        logits = reference.stream_logits(model, torch.as_tensor(features))
        scores.append(model.activate(logits).double().numpy())
        t = np.asarray(target)
        labels.append(np.eye(model.c.num_classes)[t] if t.ndim == 1 else t)
    return evaluate.evaluate(list(model.c.classes), np.concatenate(labels).astype(np.int8),
                             np.concatenate(scores), threshold)


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(model, path):
    torch.save({"config": dataclasses.asdict(model.c), "state": model.state_dict(),
                "normalization": (model.input_mean, model.input_std), "info": model.info}, path)


def load_checkpoint(path):
    ckpt = torch.load(path, map_location="cpu")
    model = NystreamModel(Config(**ckpt["config"]))
    mean, std = ckpt["normalization"]
    model.set_normalization(mean, std)
    model.load_state_dict(ckpt["state"])
    model.info = ckpt.get("info", {})
    return model


# ---------------------------------------------------------------- loop

def augment(model, batch, generator, noise=0.0, dropout=0.0, bands=0, shift=0, mask=0):
    """In place, on every token: Gaussian noise (noise x the feature's std), feature
    dropout (a dim set to its mean) and, for band-structured features (blocks of
    `bands` values, e.g. log-mel means then stds), one random shift of every block
    by up to +-shift bands per window and a masked run of up to `mask` bands: what
    the model sees of unseen sources varies (pitch, timbre, channel)."""
    if not (noise or dropout or (bands and (shift or mask))):
        return
    keys = ["window"] + (["landmark_window"] if "landmark_window" in batch else [])
    b = batch["window"][0].shape[0]
    roll = torch.randint(-shift, shift + 1, (b,), generator=generator) if shift else None
    if mask:
        width = torch.randint(0, mask + 1, (b,), generator=generator)
        start = (torch.rand(b, generator=generator) * (bands - width + 1)).long()
        band = torch.arange(bands)[None, :]
        masked = (band >= start[:, None]) & (band < (start + width)[:, None])  # [B, bands]
    for key in keys:
        tokens, times, valid = batch[key]
        mean, std = model.input_mean.to(tokens.dtype), model.input_std.to(tokens.dtype)
        z = (tokens - mean) / std
        if bands and (shift or mask):
            blocks = z.shape[-1] // bands
            zb = z[..., :blocks * bands].reshape(*z.shape[:-1], blocks, bands)
            if shift:
                index = (torch.arange(bands)[None, :] - roll[:, None]).clamp(0, bands - 1)
                zb = torch.gather(zb, -1, index[:, None, None, :].expand_as(zb))
            if mask:
                zb = zb * ~masked[:, None, None, :]
            z = torch.cat([zb.reshape(*z.shape[:-1], blocks * bands), z[..., blocks * bands:]], -1)
        if noise:
            z = z + noise * torch.randn(z.shape, generator=generator)
        if dropout:
            z = z * (torch.rand(z.shape, generator=generator) >= dropout)
        batch[key] = ((z * std + mean) * valid[..., None], times, valid)


def train(model, data, steps, batch, lr, generator, log_every=10, start_fraction=0.1,
          fresh_landmarks=False, weight_decay=0.01, **augmentation):
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(1, steps // 20)) *
        0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    losses = []
    for step in range(steps):
        b = data.sample(model.c, batch, generator, start_fraction, fresh_landmarks)
        augment(model, b, generator, **augmentation)
        loss = loss_of(model, forward_batch(model, b), b["target"])
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(float(loss))
        if log_every and (step % log_every == 0 or step + 1 == steps):
            print(f"step {step:6d}  loss {losses[-1]:.4f}", file=sys.stderr)
    return losses


def keep_freed_memory():
    """A training step allocates and frees activations and gradients of tens of MB
    (a stem's feature maps: batch x receptive field x channels x positions).
    glibc maps each such block afresh and returns it at free, so every step
    page-faults them in again: half of a stem model's step. Served from the
    heap and kept, they are reused. glibc only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m nystream_ref.train", description=__doc__
                                .split("\n\n")[0])
    export.add_architecture_args(p)
    a = p.add_argument
    a("--data", nargs="*", default=[], help=".npz files with features and labels")
    a("--val", nargs="*", default=[], help=".npz files for validation mAP")
    a("--smoke", action="store_true", help="synthetic data, a few steps, seconds")
    a("--steps", type=int, default=None)
    a("--batch", type=int, default=32)
    a("--lr", type=float, default=2e-3)
    a("--seed", type=int, default=0)
    a("--threads", type=int, default=1)
    a("--start-fraction", type=float, default=0.1, help="windows at a stream's start")
    a("--feature-noise", type=float, default=0.0, help="Gaussian noise, in feature stds")
    a("--feature-dropout", type=float, default=0.0, help="share of feature dims set to the mean")
    a("--weight-decay", type=float, default=0.01)
    a("--bands", type=int, default=0, help="features are blocks of this many bands (log-mel: n_mels)")
    a("--band-shift", type=int, default=0, help="shift every block by up to +-this many bands")
    a("--band-mask", type=int, default=0, help="mask a run of up to this many bands")
    a("--data-note", default=None, help="provenance: what the data is (default: the files)")
    a("--name", default="trained")
    a("--modality", default="features")
    a("--extractor", default="identity", help="the features' front end (docs/features.md)")
    a("--extractor-params", default="{}", help="its params, JSON")
    a("--landmark-phase", default="stream", choices=("stream", "window"),
      help="continual landmarks as the stream holds them (stale by up to L - 1 steps) or "
           "the window's own segment means: a batch Nystromformer")
    a("--checkpoint", default=None, help="torch.save checkpoint to write")
    a("--out", default=None, help="safetensors model file to write")
    a("--summary", default=None, help="write the run's numbers as JSON here")
    args = p.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    if args.smoke:
        pairs = synthetic(4, 1500, args.input_dim, args.classes, args.seed)
        # Held out: a fifth sequence with the same class prototypes (drawn first).
        val_pairs = synthetic(5, 1500, args.input_dim, args.classes, args.seed)[4:]
        names = None
        steps = args.steps or 150
        data_note = "synthetic (nystream_ref.train --smoke)"
    else:
        if not args.data:
            p.error("--data or --smoke")
        pairs, names = load_npz(args.data)
        val_pairs = load_npz(args.val)[0] if args.val else []
        steps = args.steps or 1000
        data_note = args.data_note or (
            f"{len(args.data)} .npz files in {os.path.commonpath(args.data)}")
    if names:
        args.class_names = ",".join(names)
    exclusive = np.asarray(pairs[0][1]).ndim == 1
    if exclusive and not args.class_names:
        args.classes = int(max(np.max(l) for _, l in pairs)) + 1
    elif not exclusive and not args.class_names:
        args.classes = np.asarray(pairs[0][1]).shape[1]
    try:
        config = export.config_from_args(args)
    except ValueError as error:
        p.error(str(error))
    if config.stacked and config.continual:
        p.error(STACKED_CONTINUAL)
    data = Sequences(pairs)
    model = init_weights(NystreamModel(config), args.seed)
    stacked = data.features.double()
    model.set_normalization(stacked.mean(0).float(), stacked.std(0).clamp(min=1e-6).float())
    if config.fixed:
        init_fixed_landmarks(model, data, generator)

    before = validate(model, val_pairs) if val_pairs else None
    start = time.perf_counter()
    losses = train(model, data, steps, args.batch, args.lr, generator,
                   log_every=max(1, steps // 10), start_fraction=args.start_fraction,
                   fresh_landmarks=args.landmark_phase == "window", weight_decay=args.weight_decay,
                   noise=args.feature_noise, dropout=args.feature_dropout, bands=args.bands,
                   shift=args.band_shift, mask=args.band_mask)
    seconds = time.perf_counter() - start
    after = validate(model, val_pairs) if val_pairs else None
    head, tail = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    summary = {"steps": steps, "seconds": round(seconds, 2), "loss_first10": head,
               "loss_last10": tail, "val_mAP_before": before and before["mAP"],
               "val_mAP_after": after and after["mAP"],
               "val_latency_median_tokens": after and after["latency"]["median_tokens"],
               "architecture": config.architecture()}
    print(json.dumps(summary))
    metrics = {"train_loss": tail}
    if after and after["mAP"] is not None:
        metrics["val_mAP"] = after["mAP"]
    model.info = {"name": args.name, "modality": args.modality,
                  "features": {"extractor": args.extractor, "version": 1,
                               "params": json.loads(args.extractor_params)},
                  "provenance": {"data": data_note, "metrics": metrics,
                                 "tool": "nystream_ref.train" + (" --smoke" if args.smoke else "")}}
    if args.checkpoint:
        save_checkpoint(model, args.checkpoint)
    if args.out:
        export.save(model, args.out)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
