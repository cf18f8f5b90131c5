"""The continual single-output step in PyTorch (algorithm.md 3.3), one block: for
timing against core's StreamState and as a second check of the math. Each step
ingests one token and returns the newest token's logits, equal to the batch model
on the padded window with the schedule's landmarks (reference.stream_logits).

  step = ContinualStep(model)          # model: a one-block NystreamModel
  for x in stream: logits = step(x)    # x [D] -> [C], None for a non-finite token

State per head: ring buffers of k^ and v (n x d); S = P(Qt, K^) V and s = P(Qt, K^) 1
(m x d, m) stored scaled by exp(-c_i) per landmark row (c_i the largest score the
row has seen, so no exp overflows); pinv(A). Fixed landmarks: pinv once, S and s
rebuilt from the window every n steps (bounded round-off). Continual landmarks:
a FIFO of segment means, partial sums of the segment in progress; at a completion
the oldest row leaves, the new row of S, s is computed over the window and pinv(A)
recomputed (in float64, as core's LandmarkKernel).

Command line (timing): python3 -m nystream_ref.continual [--steps N] [architecture]
"""
import argparse
import copy
import os
import sys
import time

import torch
import torch.nn.functional as F

from .model import NystreamModel, landmark_pinv


class ContinualStep:
    def __init__(self, model: NystreamModel, dtype=torch.float32, rebuild_every=None):
        c = model.c
        if c.blocks != 1:
            raise NotImplementedError("ContinualStep covers the single-output (1-block) model")
        self.c = c
        self.dtype = dtype
        self.model = model
        self.rebuild_every = rebuild_every or c.window
        cast = lambda t: t.detach().to(dtype)  # noqa: E731
        self.input_w, self.input_b = cast(model.input.weight), cast(model.input.bias)
        self.stem = None if model.stem is None else copy.deepcopy(model.stem).to(dtype)
        self.mean = None if model.input_mean is None else cast(model.input_mean)
        self.inv_std = None if model.input_std is None else cast(1.0 / model.input_std)
        self.positions = cast(model.positions)
        layer = model.layers[0]
        a = layer.attention
        self.qkv_w, self.qkv_b = cast(a.qkv.weight), cast(a.qkv.bias)
        self.out = None if a.out is None else (cast(a.out.weight), cast(a.out.bias))
        self.norm1 = (cast(layer.norm1.weight), cast(layer.norm1.bias))
        self.ff1 = (cast(layer.ff1.weight), cast(layer.ff1.bias))
        self.ff2 = (cast(layer.ff2.weight), cast(layer.ff2.bias))
        self.norm2 = (cast(layer.norm2.weight), cast(layer.norm2.bias))
        self.final = (cast(model.final_norm.weight), cast(model.final_norm.bias))
        self.cls = (cast(model.classifier.weight), cast(model.classifier.bias))
        self.scale = c.head_dim ** -0.25
        if c.fixed:
            with torch.no_grad():
                q, k = a.fixed_landmarks()
                self.fixed_pinv = landmark_pinv(q.double(), k.double(), c).to(dtype)
                self.fixed_queries = q.detach().to(dtype).contiguous()
                self.fixed_keys = k.detach().to(dtype).contiguous()
        self.reset()

    def reset(self):
        c, h, d, m, n = self.c, self.c.heads, self.c.head_dim, self.c.landmarks, self.c.window
        z = lambda *shape: torch.zeros(*shape, dtype=self.dtype)  # noqa: E731
        self.time = 0
        self.keys, self.values = z(h, n, d), z(h, n, d)  # ring: slot t % n
        if c.attention == "softmax":
            return
        if c.fixed:
            self.queries_lm, self.keys_lm = self.fixed_queries, self.fixed_keys
            self.zinv = self.fixed_pinv
        else:
            self.queries_lm, self.keys_lm = z(h, m, d), z(h, m, d)
            self.partial_q, self.partial_k = z(h, d), z(h, d)
            self.zinv = landmark_pinv(self.queries_lm.double(), self.keys_lm.double(),
                                      c).to(self.dtype)
        # An all-padding window: n zero keys, score 0 for every landmark.
        self.offset = z(h, m)
        self.sums = z(h, m, d)
        self.counts = torch.full((h, m), float(n), dtype=self.dtype)

    def _rebuild_rows(self, rows=slice(None)):
        """S, s (and offsets) of the given landmark rows from the whole window."""
        scores = self.queries_lm[:, rows] @ self.keys.transpose(1, 2)  # h x r x n
        top = scores.amax(-1)
        p = torch.exp(scores - top[..., None])
        self.offset[:, rows] = top
        self.sums[:, rows] = p @ self.values
        self.counts[:, rows] = p.sum(-1)

    @torch.no_grad()
    def __call__(self, features):
        c, h, d, n = self.c, self.c.heads, self.c.head_dim, self.c.window
        x = torch.as_tensor(features, dtype=self.dtype)
        if self.mean is not None:
            x = (x - self.mean) * self.inv_std
        e = (self.input_w @ x[:c.linear_input_dim] + self.input_b
             + self.positions[self.time % c.positional_period])
        if self.stem is not None:
            e = e + self.stem(x)
        qkv = self.qkv_w @ e + self.qkv_b
        finite = bool(torch.isfinite(qkv).all()) and bool(torch.isfinite(e).all())
        if not finite:
            qkv = torch.zeros_like(qkv)
        E = c.embed_dim
        q = (qkv[:E] * self.scale).view(h, d)
        k = (qkv[E:2 * E] * self.scale).view(h, d)
        v = qkv[2 * E:].view(h, d)
        slot = self.time % n
        if c.attention == "softmax":
            self.keys[:, slot], self.values[:, slot] = k, v
            heads = torch.softmax(self.keys @ q[..., None], dim=1).transpose(1, 2) @ self.values
        else:
            heads = self._nystrom(q, k, v, slot)
        self.time += 1
        if not finite:
            return None
        a = heads.reshape(E)
        if self.out is not None:
            a = self.out[0] @ a + self.out[1]
        z = F.layer_norm(e + a, (E,), *self.norm1, eps=c.layer_norm_eps)
        y = self.ff2[0] @ F.gelu(self.ff1[0] @ z + self.ff1[1]) + self.ff2[1]
        y = F.layer_norm(z + y, (E,), *self.norm2, eps=c.layer_norm_eps)
        y = F.layer_norm(y, (E,), *self.final, eps=c.layer_norm_eps)
        return self.cls[0] @ y + self.cls[1]

    def _nystrom(self, q, k, v, slot):
        c, n, qt = self.c, self.c.window, self.queries_lm
        # 1. The new token enters, the token n steps old leaves (same offsets).
        old_k, old_v = self.keys[:, slot], self.values[:, slot]
        new_score = (qt * k[:, None]).sum(-1)      # h x m
        old_score = (qt * old_k[:, None]).sum(-1)
        top = torch.maximum(self.offset, new_score)
        shrink = torch.exp(self.offset - top)
        self.offset = top
        w_new, w_old = torch.exp(new_score - top), torch.exp(old_score - top)
        self.sums = self.sums * shrink[..., None] + w_new[..., None] * v[:, None] \
            - w_old[..., None] * old_v[:, None]
        self.counts = self.counts * shrink + w_new - w_old
        self.keys[:, slot], self.values[:, slot] = k, v
        # 2. Landmark schedule.
        if c.fixed:
            if (self.time + 1) % self.rebuild_every == 0:
                self._rebuild_rows()
        else:
            self.partial_q += q
            self.partial_k += k
            length = c.segment_length
            if (self.time + 1) % length == 0:
                self.queries_lm = torch.cat([qt[:, 1:], (self.partial_q / length)[:, None]], 1)
                self.keys_lm = torch.cat([self.keys_lm[:, 1:],
                                          (self.partial_k / length)[:, None]], 1)
                self.partial_q.zero_()
                self.partial_k.zero_()
                for name in ("offset", "sums", "counts"):
                    t = getattr(self, name)
                    setattr(self, name, torch.cat([t[:, 1:], t[:, :1]], 1))
                self._rebuild_rows(slice(-1, None))
                self.zinv = landmark_pinv(self.queries_lm.double(), self.keys_lm.double(),
                                          c).to(self.dtype)
        # 3. out = softmax(q^ Kt^T) pinv(A) (S / s).
        f = torch.softmax((self.keys_lm @ q[..., None]).transpose(1, 2), dim=-1)  # h x 1 x m
        return (f @ self.zinv) @ (self.sums / self.counts[..., None])             # h x 1 x d


def main(argv=None):
    from .export import add_architecture_args, config_from_args
    from .model import random_model
    p = argparse.ArgumentParser(prog="python3 -m nystream_ref.continual",
                                description="Time the PyTorch continual step (one thread).")
    add_architecture_args(p)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5, help="timed runs; best and median shown")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.set_defaults(window=120, landmarks=8, input_dim=64, embed_dim=192, heads=16, ff_dim=1024,
                   classes=6, schedule="fixed")
    args = p.parse_args(argv)
    # torch.set_num_threads does not reach the BLAS library's own pool (OpenBLAS
    # in Debian's torch), which otherwise runs the matrix-vector products on a
    # second core: 197 us/step on one core measured as 225 us wall, 450 us CPU.
    # The pool is sized when the library loads, so run again with it set.
    blas = {name: str(args.threads)
            for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if any(os.environ.get(name) != value for name, value in blas.items()):
        os.execve(sys.executable, [sys.executable, "-m", "nystream_ref.continual"] +
                  list(sys.argv[1:] if argv is None else argv), {**os.environ, **blas})
    torch.set_num_threads(args.threads)
    c = config_from_args(args)
    dtype = getattr(torch, args.dtype)
    step = ContinualStep(random_model(c, seed=1), dtype=dtype)
    tokens = torch.randn(args.warmup + args.steps, c.input_dim, dtype=dtype,
                         generator=torch.Generator().manual_seed(0))
    for x in tokens[:args.warmup]:
        step(x)
    runs, cpu_runs = [], []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        for x in tokens[args.warmup:]:
            step(x)
        runs.append((time.perf_counter() - start) / args.steps)
        cpu_runs.append((time.process_time() - cpu) / args.steps)
    best, median = min(runs), sorted(runs)[len(runs) // 2]
    # Baseline: the batch model re-encoding one window per step (what a plain
    # transformer does), same weights and dtype.
    batch_model = step.model.to(dtype)
    n = c.window
    times = torch.arange(n)[None]
    valid = torch.ones(1, n, dtype=torch.bool)
    batch_runs = []
    with torch.no_grad():
        for _ in range(args.repeats):
            count = max(20, args.steps // 20)
            start = time.perf_counter()
            for i in range(count):
                batch_model(tokens[i:i + n][None], times + i, valid)
            batch_runs.append((time.perf_counter() - start) / count)
    batch_best = min(batch_runs)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.dtype}: n={c.window} "
          f"E={c.embed_dim} h={c.heads} F={c.ff_dim} m={c.landmarks} D={c.input_dim} "
          f"C={c.num_classes} blocks={c.blocks} {c.attention}/{c.landmark_schedule}: "
          f"best {best * 1e6:.1f} us/step ({1 / best:.0f} steps/s), median {median * 1e6:.1f} "
          f"us/step, CPU time best {min(cpu_runs) * 1e6:.1f} us/step (wall time is inflated "
          f"when other processes share the cores), {args.repeats} runs of {args.steps} steps; "
          f"batch model re-encoding the "
          f"window: best {batch_best * 1e6:.1f} us/step ({batch_best / best:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
