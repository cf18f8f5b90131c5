"""The Nystream transformer in PyTorch, batch form: the same architecture and the
same numbers as core/include/nystream/batch.h (the C++ batch reference).

Shapes: tokens [B, N, D] oldest first; times [B, N] absolute stream index of each
token (positional embedding row = time mod P); valid [B, N] bool, False for padding
(before time 0) and dropped tokens, whose q, k and v are zero in every layer
(algorithm.md 3.2). Landmarks of one layer: a pair (queries, keys), each
[B, h, m, d] or [h, m, d], in scaled space q^ = q / d^(1/4).

Two assemblies (Config.assembly):
- "retroactive" (the default), N = n, the window: one block is a single-output
  layer (only the newest row is computed); two blocks are the first layer for
  every row of the window, then the second for the newest row.
- "stacked" (algorithm.md 7), N = Config.receptive_field = L(n-1)+1 for L blocks:
  causal single-output layers. Row t of layer l attends with its own query over
  the last n outputs of the layer below (rows t-n+1 .. t), so layer l computes
  the (L-1-l)(n-1)+1 newest rows, the ones layer l+1 needs (banded windows:
  cost linear in the rows, Attention.banded). With one block both assemblies are
  the same model.
forward() returns the newest token's logits (pre-activation).

A stem (Config.stem, docs/model-format.md `architecture.stem`) adds a small CNN's
pooled, projected output to every token's embedding (Stem).
"""
import dataclasses
import math
from typing import Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F


MAX_STACKED_BLOCKS = 16
STEM_KEYS = ("input_offset", "input_shape", "layers", "pool_strips")
STEM_LAYER_KEYS = ("channels", "kernel", "stride")


def stem_spec(spec):
    """A stem spec (`architecture.stem`, docs/model-format.md: input_offset,
    input_shape [C, H, W], layers [{channels, kernel [kh, kw], stride [sh, sw]}],
    pool_strips) with every key, defaults filled in (offset 0, stride [1, 1], no
    strips), as the engine writes it. Unknown keys are refused."""
    unknown = set(spec) - set(STEM_KEYS)
    if unknown or not spec.get("layers") or "input_shape" not in spec:
        raise ValueError(f"stem needs input_shape and layers (keys {', '.join(STEM_KEYS)}); "
                         f"got {sorted(spec)}")
    layers = []
    for layer in spec["layers"]:
        if set(layer) - set(STEM_LAYER_KEYS) or "channels" not in layer or "kernel" not in layer:
            raise ValueError(f"stem layer needs channels and kernel (keys "
                             f"{', '.join(STEM_LAYER_KEYS)}); got {sorted(layer)}")
        layers.append({"channels": int(layer["channels"]),
                       "kernel": [int(k) for k in layer["kernel"]],
                       "stride": [int(k) for k in layer.get("stride", (1, 1))]})
    return {"input_offset": int(spec.get("input_offset", 0)),
            "input_shape": [int(k) for k in spec["input_shape"]],
            "layers": layers, "pool_strips": int(spec.get("pool_strips", 0))}


def stem_sizes(stem):
    """(channels, height, width) of a stem's input and of each layer's output:
    "same" padding k // 2 on both sides, so a side s becomes
    (s + 2 (k // 2) - k) // stride + 1."""
    c, h, w = stem["input_shape"]
    sizes = [(c, h, w)]
    for layer in stem["layers"]:
        (kh, kw), (sh, sw) = layer["kernel"], layer["stride"]
        h = (h + 2 * (kh // 2) - kh) // sh + 1
        w = (w + 2 * (kw // 2) - kw) // sw + 1
        sizes.append((layer["channels"], h, w))
    return sizes


@dataclasses.dataclass
class Config:
    """The `architecture` object of docs/model-format.md, plus the class names."""
    window: int
    landmarks: int
    input_dim: int
    embed_dim: int
    heads: int
    ff_dim: int
    classes: Sequence[str] = ("class0",)
    blocks: int = 1
    assembly: str = "retroactive"         # or "stacked" (algorithm.md 7)
    attention: str = "nystrom"            # or "softmax"
    landmark_schedule: str = "continual"  # or "fixed"
    pinv: str = "iterative"               # or "exact"
    pinv_iterations: int = 6
    positional_period: Optional[int] = None  # None: window
    output_activation: str = "sigmoid"    # or "softmax"
    output_projection: bool = True
    layer_norm_eps: float = 1e-5
    linear_inputs: Optional[int] = None   # leading token values input.weight reads (None: all)
    stem: Optional[dict] = None           # architecture.stem (stem_spec); None: no stem

    def __post_init__(self):
        self.classes = tuple(self.classes)
        if self.positional_period is None:
            self.positional_period = self.window
        problems = []
        if self.linear_inputs is not None and not 1 <= self.linear_inputs <= self.input_dim:
            problems.append("linear_inputs must be in 1 .. input_dim")
        if self.stem is not None:
            self.stem = stem_spec(self.stem)
            problems += self._stem_problems()
        if self.embed_dim % self.heads:
            problems.append("embed_dim must be a multiple of heads")
        if self.assembly not in ("retroactive", "stacked"):
            problems.append("assembly must be retroactive or stacked")
        elif self.assembly == "retroactive" and self.blocks not in (1, 2):
            problems.append("blocks must be 1 or 2 (retroactive assembly)")
        elif self.assembly == "stacked" and not 1 <= self.blocks <= MAX_STACKED_BLOCKS:
            problems.append(f"blocks must be in 1 .. {MAX_STACKED_BLOCKS} (stacked assembly)")
        if self.attention not in ("nystrom", "softmax"):
            problems.append("attention must be nystrom or softmax")
        if self.landmark_schedule not in ("continual", "fixed"):
            problems.append("landmark_schedule must be continual or fixed")
        if self.pinv not in ("iterative", "exact"):
            problems.append("pinv must be iterative or exact")
        if self.output_activation not in ("sigmoid", "softmax"):
            problems.append("output_activation must be sigmoid or softmax")
        if not 1 <= self.landmarks <= self.window:
            problems.append("landmarks must be in 1 .. window")
        if (self.attention == "nystrom" and self.landmark_schedule == "continual"
                and self.window % self.landmarks):
            problems.append("continual landmarks need window % landmarks == 0")
        if not self.classes or len(set(self.classes)) != len(self.classes):
            problems.append("class names must be unique and non-empty")
        if problems:
            raise ValueError("; ".join(problems))

    def _stem_problems(self):
        s = self.stem
        if len(s["input_shape"]) != 3 or min(s["input_shape"]) < 1:
            return ["stem input_shape must be 3 positive sizes [C, H, W]"]
        if any(l["channels"] < 1 or len(l["kernel"]) != 2 or len(l["stride"]) != 2
               or min(l["kernel"] + l["stride"]) < 1 for l in s["layers"]):
            return ["stem layers need channels >= 1 and kernel and stride pairs >= 1"]
        problems = []
        c, h, w = s["input_shape"]
        if s["input_offset"] < 0 or s["input_offset"] + c * h * w > self.input_dim:
            problems.append("the stem's input [input_offset, input_offset + C H W) must lie "
                            "within the input_dim token values")
        if not 0 <= s["pool_strips"] <= stem_sizes(s)[-1][1]:
            problems.append("stem pool_strips must be in 0 .. the last feature map's height")
        return problems

    @property
    def linear_input_dim(self):
        return self.input_dim if self.linear_inputs is None else self.linear_inputs

    @property
    def head_dim(self):
        return self.embed_dim // self.heads

    @property
    def segment_length(self):
        """L = n / m: steps between continual landmark updates."""
        return self.window // self.landmarks

    @property
    def stacked(self):
        return self.assembly == "stacked"

    @property
    def receptive_field(self):
        """How many of the newest tokens the newest logits depend on. Retroactive:
        the window n; stacked: L(n-1)+1 for L blocks, the tokens forward() takes.
        Continual landmarks (segment means at the last completion, up to L_seg - 1
        steps back) reach L_seg - 1 tokens further per layer (retroactive: once,
        every layer sees the same window)."""
        n = self.window
        extra = self.segment_length - 1 if self.continual else 0
        if self.stacked:
            return self.blocks * (n - 1 + extra) + 1
        return n + extra

    def stacked_rows(self, layer):
        """Stacked: output rows layer `layer` (0-based) computes in the training
        forward, (L-1-layer)(n-1)+1; its input has n-1 rows more."""
        return (self.blocks - 1 - layer) * (self.window - 1) + 1

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def fixed(self):
        return self.attention == "nystrom" and self.landmark_schedule == "fixed"

    @property
    def continual(self):
        return self.attention == "nystrom" and self.landmark_schedule == "continual"

    def architecture(self):
        """The metadata `architecture` object (every key written explicitly, but
        linear_inputs and stem only when set: files without them stay as before)."""
        out = dataclasses.asdict(self)
        out.pop("classes")
        for key in ("linear_inputs", "stem"):
            if out[key] is None:
                out.pop(key)
        return out


# ---------------------------------------------------------------- Nyström pieces

def iterative_pinv(a, iterations=6):
    """Nyströmformer's iteration over the last two dims, with a per-matrix start
    Z0 = A^T / (|A|_1 |A|_inf) (algorithm.md 2; core/include/nystream/pinv.h)."""
    norm1 = a.abs().sum(-2).amax(-1)
    norm_inf = a.abs().sum(-1).amax(-1)
    z = a.transpose(-1, -2) / (norm1 * norm_inf)[..., None, None]
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def landmark_pinv(queries, keys, config):
    """pinv(softmax(Qt Kt^T)) per head: [..., m, m]."""
    a = torch.softmax(queries @ keys.transpose(-1, -2), dim=-1)
    if config.pinv == "exact":
        return torch.linalg.pinv(a)
    return iterative_pinv(a, config.pinv_iterations)


def nystrom_attention(q, k, v, queries, keys, config):
    """F pinv(A) (G V) per head. q [B, h, r, d]; k, v [B, h, n, d]; landmarks
    [B or 1, h, m, d]. Returns [B, h, r, d]."""
    f = torch.softmax(q @ keys.transpose(-1, -2), dim=-1)        # r x m
    z = landmark_pinv(queries, keys, config)                     # m x m
    g = torch.softmax(queries @ k.transpose(-1, -2), dim=-1)     # m x n
    return f @ (z @ (g @ v))


def softmax_attention(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v


def segment_means(x, m):
    """Means of m equal consecutive segments along dim -2: [..., n, d] -> [..., m, d]."""
    *lead, n, d = x.shape
    return x.reshape(*lead, m, n // m, d).mean(-2)


def banded_matrix(w, columns):
    """[..., r, n] -> [..., r, columns], zero but for row i's n entries at columns
    i .. i+n-1 (row i of a stacked layer's rows over its inputs: columns = r+n-1).
    Built by padding rows to columns + 1 and reading the buffer with stride
    `columns`, which shifts each row one further right."""
    rows, n = w.shape[-2:]
    padded = F.pad(w, (0, columns + 1 - n)).flatten(-2)       # rows x (columns + 1)
    return padded[..., :rows * columns].view(*w.shape[:-2], rows, columns)


# Attention.banded: smallest band sum of exp(score - block max) the fast path takes;
# below it (scores spread by > ~18 within a block's inputs) rows use their own
# maxima. The backward divides by the sum squared: at 1e-8, 1/sum^2 = 1e16 stays
# far inside float32 (3e38); at 1e-20 it overflowed and training went NaN.
BANDED_SUM_FLOOR = 1e-8
# Attention.banded: rows per block, in windows (n rows); a block of s rows
# multiplies s x (s+n-1) weights, so larger blocks waste more on zeros but make
# fewer, larger matrix products (at 2: at most 1.5x the band's work, and
# measured as fast as 1, 4 or one block for blocks 2 .. 8 at n = 32).
BANDED_BLOCK_WINDOWS = 2


# ---------------------------------------------------------------- modules

class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        e = c.embed_dim
        self.qkv = nn.Linear(e, 3 * e)
        self.out = nn.Linear(e, e) if c.output_projection else None
        if c.fixed:
            # Scaled space, [m, E] as in the file; column block j = head j.
            self.landmark_queries = nn.Parameter(torch.zeros(c.landmarks, e))
            self.landmark_keys = nn.Parameter(torch.zeros(c.landmarks, e))

    def split(self, x):
        """[B, n, E] -> [B, h, n, d]."""
        b, n, _ = x.shape
        return x.view(b, n, self.c.heads, self.c.head_dim).transpose(1, 2)

    def project(self, x, valid):
        """Scaled q^, k^ and v, [B, h, n, d] each, zero for invalid tokens."""
        e = self.c.embed_dim
        qkv = self.qkv(x) * valid[..., None].to(x.dtype)
        scale = self.c.head_dim ** -0.25
        q, k, v = qkv[..., :e] * scale, qkv[..., e:2 * e] * scale, qkv[..., 2 * e:]
        return self.split(q), self.split(k), self.split(v)

    def fixed_landmarks(self):
        """The model's fixed landmarks as ([h, m, d], [h, m, d])."""
        c = self.c
        def heads(t):
            return t.view(c.landmarks, c.heads, c.head_dim).transpose(0, 1)
        return heads(self.landmark_queries), heads(self.landmark_keys)

    def window_landmarks(self, x, valid):
        """Segment means of this window's q^, k^: [B, h, m, d] each."""
        q, k, _ = self.project(x, valid)
        return segment_means(q, self.c.landmarks), segment_means(k, self.c.landmarks)

    def forward(self, x, valid, landmarks, rows):
        """Attention output of the last `rows` tokens: [B, rows, E]."""
        q, k, v = self.project(x, valid)
        q = q[:, :, -rows:]
        if self.c.attention == "softmax":
            heads = softmax_attention(q, k, v)
        else:
            heads = nystrom_attention(q, k, v, landmarks[0], landmarks[1], self.c)
        return self.merge(heads)

    def merge(self, heads):
        """[B, h, r, d] -> heads concatenated, output projection: [B, r, E]."""
        b, _, rows, _ = heads.shape
        heads = heads.transpose(1, 2).reshape(b, rows, self.c.embed_dim)
        return self.out(heads) if self.out is not None else heads

    def banded(self, x, valid, landmarks, rows):
        """Stacked assembly: the last `rows` rows, row r attending with its own
        query over its own window, the n inputs ending at r. x [B, rows+n-1, E];
        landmarks (fixed) shared by every row. Returns [B, rows, E].

        Rows go in blocks of s = BANDED_BLOCK_WINDOWS n (or fewer): block b's rows
        see inputs b s .. b s + s+n-2 (a Tensor.unfold view of the sequence, size
        s+n-1, step s), so the rows' attention weights are a banded [s, s+n-1]
        matrix per block (zero outside each row's window) applied to the block's
        values by one matrix product: cost ~ rows x (s+n-1) per head, linear in
        the rows, not (rows+n)^2. Softmax: q K^T masked to the band.
        Nystrom per row r: f(q_r) pinv(A) (G_r V_r), G_r the softmax of the
        landmark queries' scores over row r's n keys, taken as the row's weights
        w_r = f(q_r) pinv(A) G_r: O(rows n m), not O(rows n m d) for every G_r V_r.
        With e = exp(Qt K^T - the block's max), row r's softmax denominators are
        band sums of e, so w = (F pinv(A) / sums) e, masked: plain matmuls. When a
        band sum falls below BANDED_SUM_FLOOR (landmark scores spread by > ~18
        within a block's inputs: the backward's 1/sum^2 would overflow float32)
        every row takes its own maxima instead (G_r from an unfold over each row's
        n keys)."""
        n = self.c.window
        x, valid = x[:, -(rows + n - 1):], valid[:, -(rows + n - 1):]
        q, k, v = self.project(x, valid)                   # [B, h, N, d], N = rows+n-1
        q = q[:, :, -rows:]
        size = min(rows, BANDED_BLOCK_WINDOWS * n)         # rows per block
        blocks = -(-rows // size)
        extra = blocks * size - rows  # rows past the end (their outputs are dropped)
        if extra:
            q, k, v = (F.pad(t, (0, 0, 0, extra)) for t in (q, k, v))
        span = size + n - 1
        b, h = q.shape[:2]
        q = q.reshape(b, h, blocks, size, -1)               # B h blocks size d
        k = k.unfold(2, span, size)                         # B h blocks d span
        v = v.unfold(2, span, size).transpose(-1, -2)       # B h blocks span d
        offset = torch.arange(span)[None, :] - torch.arange(size)[:, None]
        band = (offset >= 0) & (offset < n)                  # size x span
        if self.c.attention == "softmax":
            weights = torch.softmax((q @ k).masked_fill(~band, float("-inf")), -1)
        else:
            queries, keys = landmarks                       # [B or 1, h, m, d]
            f = torch.softmax(q @ keys.transpose(-1, -2)[:, :, None], dim=-1)  # B h blocks n m
            fz = f @ landmark_pinv(queries, keys, self.c)[:, :, None]
            scores = queries[:, :, None] @ k                                 # B h blocks m span
            e = torch.exp(scores - scores.detach().amax(-1, keepdim=True))
            mask = band.to(e.dtype)
            sums = e @ mask.transpose(0, 1)                                  # B h blocks m n
            if bool((sums > BANDED_SUM_FLOOR).all()):
                weights = (fz / sums.transpose(-1, -2)) @ e * mask            # B h blocks n span
            else:
                g = torch.softmax(scores.unfold(-1, n, 1), dim=-1)           # B h blocks m n n
                rowwise = (fz.transpose(-1, -2)[..., None] * g).sum(-3)      # B h blocks n n
                weights = banded_matrix(rowwise, span)
        heads = (weights @ v).reshape(b, h, blocks * size, -1)[:, :, :rows]
        return self.merge(heads)


class Block(nn.Module):
    """Post-norm encoder block: z = LN(x + Attn(x)), y = LN(z + FF(z))."""

    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.attention = Attention(c)
        self.norm1 = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        self.ff1 = nn.Linear(c.embed_dim, c.ff_dim)
        self.ff2 = nn.Linear(c.ff_dim, c.embed_dim)
        self.norm2 = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)

    def forward(self, x, valid, landmarks, rows):
        return self.residual(x[:, -rows:], self.attention(x, valid, landmarks, rows))

    def banded(self, x, valid, landmarks, rows):
        """Stacked assembly: the last `rows` rows, each over its own window
        (Attention.banded)."""
        return self.residual(x[:, -rows:], self.attention.banded(x, valid, landmarks, rows))

    def residual(self, x, attended):
        """The rest of the block for rows x [.., E] given their attention output."""
        z = self.norm1(x + attended)
        return self.norm2(z + self.ff2(F.gelu(self.ff1(z))))


class Stem(nn.Module):
    """The convolutional stem (docs/model-format.md `architecture.stem`, as
    core/include/nystream/conv_stem.h): the normalised token values [offset,
    offset + C H W) as a C x H x W image, convolutions with "same" padding k // 2
    and stride, each followed by ReLU; per channel of the last map, the maximum
    over each of g horizontal strips (rows [i H'/g, (i+1) H'/g)), the global
    maximum and the global mean (channel c's g + 2 values together), projected to
    E without bias. Tensors stem.conv.{i}.weight / .bias and stem.proj.weight."""

    def __init__(self, c: Config):
        super().__init__()
        s = c.stem
        sizes = stem_sizes(s)
        self.offset, self.shape, self.strips = s["input_offset"], sizes[0], s["pool_strips"]
        self.conv = nn.ModuleList(
            nn.Conv2d(sizes[i][0], layer["channels"], tuple(layer["kernel"]),
                      stride=tuple(layer["stride"]), padding=tuple(k // 2 for k in layer["kernel"]))
            for i, layer in enumerate(s["layers"]))
        self.proj = nn.Linear(sizes[-1][0] * (self.strips + 2), c.embed_dim, bias=False)

    def pooled(self, tokens):
        """[..., D] normalised tokens -> [..., c_L (g + 2)]."""
        c, h, w = self.shape
        x = tokens[..., self.offset:self.offset + c * h * w].reshape(-1, c, h, w)
        for conv in self.conv:
            x = F.relu(conv(x))
        height, g = x.shape[2], self.strips
        if g == 0:
            strips, top = x.new_zeros(x.shape[:2] + (0,)), x.amax((2, 3)).unsqueeze(-1)
        else:
            if height % g == 0:
                # Equal strips: one pooling op. Per-strip slices cost a full-size
                # gradient buffer each in backward, most of a training step.
                strips = F.max_pool2d(x, (height // g, x.shape[3])).flatten(2)
            else:
                strips = torch.stack([x[:, :, i * height // g:(i + 1) * height // g].amax((2, 3))
                                      for i in range(g)], -1)
            top = strips.amax(-1, keepdim=True)  # the strips cover every row
        parts = torch.cat([strips, top, x.mean((2, 3)).unsqueeze(-1)], -1)
        return parts.reshape(*tokens.shape[:-1], -1)

    def forward(self, tokens):
        """[..., D] normalised tokens -> what the stem adds to their embedding, [..., E]."""
        return self.proj(self.pooled(tokens))


class NystreamModel(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.register_buffer("input_mean", None)
        self.register_buffer("input_std", None)
        self.input = nn.Linear(c.linear_input_dim, c.embed_dim)
        self.stem = Stem(c) if c.stem is not None else None
        self.positions = nn.Parameter(torch.zeros(c.positional_period, c.embed_dim))
        self.layers = nn.ModuleList(Block(c) for _ in range(c.blocks))
        self.final_norm = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        self.classifier = nn.Linear(c.embed_dim, c.num_classes)
        self.info = {}  # name, modality, features, provenance (export.py)

    def set_normalization(self, mean, std):
        """Input normalisation (x - mean) / std, or None for none."""
        if mean is None:
            self.input_mean = self.input_std = None
            return
        p = self.input.weight
        self.input_mean = torch.as_tensor(mean, dtype=p.dtype, device=p.device).clone()
        self.input_std = torch.as_tensor(std, dtype=p.dtype, device=p.device).clone()

    @property
    def dtype(self):
        return self.input.weight.dtype

    def embed(self, tokens, times):
        """Normalise, project (the first linear_input_dim values), add
        positions[time mod P] and the stem's output: [B, n, E]."""
        if self.input_mean is not None:
            tokens = (tokens - self.input_mean) / self.input_std
        x = (self.input(tokens[..., :self.c.linear_input_dim])
             + self.positions[times % self.c.positional_period])
        return x if self.stem is None else x + self.stem(tokens)

    def window_landmarks(self, tokens, times, valid):
        """What the continual schedule holds right after a segment completes at the
        window's last token: per layer, the segment means of that layer's inputs on
        this window (the second layer's inputs are the first layer's outputs for
        every row, computed with the first layer's landmarks of this window).
        Retroactive assembly only (stacked: reference.stacked_stream)."""
        if self.c.stacked:
            raise NotImplementedError("stacked landmarks differ per row: reference.stacked_stream")
        x = self.embed(tokens, times)
        out = []
        for l, layer in enumerate(self.layers):
            out.append(layer.attention.window_landmarks(x, valid))
            if l + 1 < len(self.layers):
                x = layer(x, valid, out[-1], x.shape[1])
        return out

    def zero_landmarks(self, batch):
        c = self.c
        z = torch.zeros(batch, c.heads, c.landmarks, c.head_dim, dtype=self.dtype,
                        device=self.input.weight.device)
        return [(z, z) for _ in range(c.blocks)]

    def forward(self, tokens, times, valid, landmarks=None, all_rows=False):
        """Logits of each window's newest token, [B, C]. Stacked assembly:
        stacked_forward (windows of Config.receptive_field tokens).

        landmarks: per layer (queries, keys); None means the model's own: fixed
        landmarks, or each layer's window segment means (plain Nyströmformer).
        all_rows: run the last layer on every row, as a plain encoder would (the
        newest row is the same either way)."""
        if self.c.stacked:
            return self.stacked_forward(tokens, times, valid, landmarks)
        x = self.embed(tokens, times)
        n = x.shape[1]
        for l, layer in enumerate(self.layers):
            rows = 1 if (l + 1 == len(self.layers) and not all_rows) else n
            if landmarks is not None:
                lm = landmarks[l]
            elif self.c.fixed:
                lm = tuple(t.unsqueeze(0) for t in layer.attention.fixed_landmarks())
            elif self.c.continual:
                lm = layer.attention.window_landmarks(x, valid)
            else:
                lm = None
            x = layer(x, valid, lm, rows)
        return self.classifier(self.final_norm(x[:, -1]))

    def stacked_forward(self, tokens, times, valid, landmarks=None):
        """Stacked assembly: logits of the newest token, [B, C], from the last
        L(n-1)+1 tokens (Config.receptive_field without continual landmarks;
        earlier ones are ignored). Fixed landmarks or softmax attention;
        landmarks: per layer (queries, keys) shared by every row, None for the
        model's own. Continual landmarks differ from row to row
        (reference.stream_logits computes them), not here."""
        c = self.c
        if c.continual and landmarks is None:
            raise NotImplementedError(
                "the stacked training forward covers fixed landmarks and softmax attention; "
                "stacked with continual landmarks: reference.stream_logits")
        span = c.stacked_rows(0) + c.window - 1  # L(n-1)+1
        if tokens.shape[1] < span:
            raise ValueError(f"stacked forward needs {span} tokens, got {tokens.shape[1]}")
        tokens, times, valid = tokens[:, -span:], times[:, -span:], valid[:, -span:]
        x = self.embed(tokens, times)
        for l, layer in enumerate(self.layers):
            rows = c.stacked_rows(l)
            if landmarks is not None:
                lm = landmarks[l]
            elif c.fixed:
                lm = tuple(t.unsqueeze(0) for t in layer.attention.fixed_landmarks())
            else:
                lm = None
            x = layer.banded(x, valid, lm, rows)
        return self.classifier(self.final_norm(x[:, -1]))

    def activate(self, logits):
        if self.c.output_activation == "softmax":
            return torch.softmax(logits, dim=-1)
        return torch.sigmoid(logits)


# ---------------------------------------------------------------- initialisation

def init_weights(model: NystreamModel, seed: int, random_extras: bool = False):
    """Xavier-uniform matrices (each of q, k, v on its own E x E block), as
    core's random_weights. random_extras: also random biases, LayerNorm gains
    near 1, positions, fixed landmarks, input normalisation and the stem's
    projection, so that a test model exercises every tensor (otherwise: zero
    biases, unit gains, small positions and a zero stem projection, for
    training: it starts as the model without the stem). Stem filters:
    He-uniform (ReLU follows), as core's random_weights."""
    g = torch.Generator().manual_seed(seed)
    c = model.c

    def uniform(shape, bound, centre=0.0):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound + centre

    def xavier(rows, cols):
        return uniform((rows, cols), math.sqrt(6.0 / (rows + cols)))

    def small(size):
        return uniform((size,), 0.1) if random_extras else torch.zeros(size, dtype=torch.float64)

    def gain(size):
        return uniform((size,), 0.2, 1.0) if random_extras else torch.ones(size, dtype=torch.float64)

    e = c.embed_dim
    with torch.no_grad():
        def put(param, value):
            param.copy_(value.to(param.dtype))

        if random_extras:
            mean = uniform((c.input_dim,), 0.5)
            std = 1.0 / uniform((c.input_dim,), 0.75, 1.25)
            model.set_normalization(mean, std)
        put(model.input.weight, xavier(e, c.linear_input_dim))
        put(model.input.bias, small(e))
        put(model.positions, uniform((c.positional_period, e), 0.5 if random_extras else 0.02))
        for layer in model.layers:
            a = layer.attention
            put(a.qkv.weight, torch.cat([xavier(e, e) for _ in range(3)]))
            put(a.qkv.bias, small(3 * e))
            if a.out is not None:
                put(a.out.weight, xavier(e, e))
                put(a.out.bias, small(e))
            put(layer.norm1.weight, gain(e))
            put(layer.norm1.bias, small(e))
            put(layer.ff1.weight, xavier(c.ff_dim, e))
            put(layer.ff1.bias, small(c.ff_dim))
            put(layer.ff2.weight, xavier(e, c.ff_dim))
            put(layer.ff2.bias, small(e))
            put(layer.norm2.weight, gain(e))
            put(layer.norm2.bias, small(e))
            if c.fixed:
                put(a.landmark_queries, uniform((c.landmarks, e), 1.0))
                put(a.landmark_keys, uniform((c.landmarks, e), 1.0))
        put(model.final_norm.weight, gain(e))
        put(model.final_norm.bias, small(e))
        put(model.classifier.weight, xavier(c.num_classes, e))
        put(model.classifier.bias, small(c.num_classes))
        if model.stem is not None:  # drawn last: models without a stem keep their weights
            for conv in model.stem.conv:
                put(conv.weight, uniform(conv.weight.shape, math.sqrt(6.0 / conv.weight[0].numel())))
                put(conv.bias, small(conv.out_channels))
            proj = model.stem.proj.weight
            put(proj, xavier(*proj.shape) if random_extras
                else torch.zeros(proj.shape, dtype=torch.float64))
    return model


def random_model(config: Config, seed: int = 7, dtype=torch.float64, random_extras=True):
    return init_weights(NystreamModel(config), seed, random_extras).to(dtype)
