"""Per-step batch reference for a whole stream, as tests/core/reference.h derives it:
step t sees the window of n tokens ending at t, zero-padded before time 0 (padding
and dropped tokens are invalid: q = k = v = 0 in every layer), with the landmarks
the schedule holds after ingesting token t:
  fixed: the model's;
  continual: the segment means of the window ending at the last completion
  c = floor((t+1)/L)*L - 1 (zeros while c < 0), per layer as
  NystreamModel.window_landmarks computes them.

Stacked assembly (algorithm.md 7): stacked_stream, layer by layer over the whole
stream: every row of every layer once, row t of layer l attending with its own
query over layer l's inputs at t-n+1 .. t (the first layer's inputs the embedded
tokens, each later layer's the outputs of the one below; before time 0 padding,
q = k = v = 0 as for dropped tokens). Landmarks: fixed, the model's; continual,
per layer and row t, the segment means of that layer's own q^, k^ over the
window ending at the last completion c (zeros while c < 0).
"""
import torch

from .model import nystrom_attention, softmax_attention


def windows_for(n, features, valid=None, ends=None):
    """Windows of n tokens ending at each index in `ends` (default: every step).
    features [T, D] tensor; valid [T] bool or None. Returns (tokens [S, n, D],
    times [S, n] long, valid [S, n] bool); padding has time 0 and zero features."""
    t_total = features.shape[0]
    if valid is None:
        valid = torch.ones(t_total, dtype=torch.bool)
    if ends is None:
        ends = torch.arange(t_total)
    ends = torch.as_tensor(ends, dtype=torch.long)
    times = ends[:, None] - n + 1 + torch.arange(n)[None, :]
    real = times >= 0
    safe = times.clamp(min=0)
    ok = real & valid[safe]
    tokens = features[safe] * ok[..., None].to(features.dtype)
    return tokens, safe, ok


def last_completion(t, segment_length):
    """End of the last completed landmark segment at or before t (-1: none yet)."""
    return (t + 1) // segment_length * segment_length - 1


@torch.no_grad()
def step_landmarks(model, features, valid, ends):
    """Per layer (queries, keys) [S, h, m, d]: what the schedule holds after each
    step in `ends` (None for fixed landmarks and softmax attention: the model's)."""
    c = model.c
    if not c.continual:
        return None
    ends = torch.as_tensor(ends, dtype=torch.long)
    if c.stacked:
        last = int(ends.max()) + 1
        part = None if valid is None else torch.as_tensor(valid)[:last]
        return stacked_stream(model, features[:last], part, record_landmarks=ends)[1]
    done = last_completion(ends, c.segment_length)
    landmarks = model.zero_landmarks(len(ends))
    have = done >= 0
    if have.any():
        lt, ltimes, lok = windows_for(c.window, features, valid, done[have])
        computed = model.window_landmarks(lt, ltimes, lok)
        landmarks = [(q.clone(), k.clone()) for q, k in landmarks]
        for (q, k), (cq, ck) in zip(landmarks, computed):
            q[have] = cq
            k[have] = ck
    return landmarks


def segment_table(x, segment_length, m):
    """Stacked, continual schedule, one layer: x [h, T, d] that layer's q^ or k^
    at stream times 0 .. T-1 (zero for dropped tokens) -> [h, m + S, d]: m zero
    rows (segments before time 0), then the means of the S = T // L_seg complete
    segments aligned to absolute time."""
    h, length, d = x.shape
    count = length // segment_length
    means = x[:, :count * segment_length].reshape(h, count, segment_length, d).mean(2)
    return torch.cat([x.new_zeros(h, m, d), means], 1)


def landmarks_at(table, t, segment_length, m):
    """The landmarks the schedule holds after steps t [S]: the m segments ending
    at the last completion (all zero before the first), [S, h, m, d]."""
    done = (t + 1) // segment_length                      # completed segments
    index = done[:, None] + torch.arange(m)[None, :]      # table rows of segments done-m .. done-1
    return table[:, index].permute(1, 0, 2, 3)


@torch.no_grad()
def stacked_stream(model, features, valid=None, chunk=256, record_landmarks=None):
    """Stacked assembly, the whole stream [T, D]: logits at every step [T, C].
    record_landmarks: steps [S] at which to also return each layer's landmarks
    (list of (queries, keys) [S, h, m, d], continual schedule only)."""
    c = model.c
    n = c.window
    features = torch.as_tensor(features).to(model.dtype)
    length = features.shape[0]
    valid = torch.ones(length, dtype=torch.bool) if valid is None else torch.as_tensor(valid)
    features = torch.where(valid[:, None], features, torch.zeros((), dtype=features.dtype))
    x = model.embed(features, torch.arange(length))                        # T x E
    padded_valid = torch.cat([torch.zeros(n - 1, dtype=torch.bool), valid])
    recorded = []
    for layer in model.layers:
        a = layer.attention
        padded = torch.cat([x.new_zeros(n - 1, x.shape[1]), x])
        q, k, v = (t[0] for t in a.project(padded[None], padded_valid[None]))  # h x T+n-1 x d
        if c.fixed:
            fixed = tuple(t.unsqueeze(0) for t in a.fixed_landmarks())
        if c.continual:
            tables = [segment_table(t[:, n - 1:], c.segment_length, c.landmarks) for t in (q, k)]
            if record_landmarks is not None:
                steps = torch.as_tensor(record_landmarks, dtype=torch.long)
                recorded.append(tuple(landmarks_at(t, steps, c.segment_length, c.landmarks)
                                      for t in tables))
        out = []
        for start in range(0, length, chunk):
            end = min(length, start + chunk)
            # Row t's window: padded rows t .. t+n-1 (stream times t-n+1 .. t).
            def windows(t):
                return t[:, start:end + n - 1].unfold(1, n, 1).permute(1, 0, 3, 2)  # r h n d
            keys, values = windows(k), windows(v)
            query = q[:, start + n - 1:end + n - 1].transpose(0, 1)[:, :, None]     # r h 1 d
            if c.attention == "softmax":
                heads = softmax_attention(query, keys, values)
            else:
                if c.fixed:
                    lq, lk = fixed
                else:
                    lq, lk = (landmarks_at(t, torch.arange(start, end), c.segment_length,
                                           c.landmarks) for t in tables)
                heads = nystrom_attention(query, keys, values, lq, lk, c)    # r h 1 d
            attended = a.merge(heads)[:, 0]                                    # r x E
            out.append(layer.residual(x[start:end], attended))
        x = torch.cat(out)
    logits = model.classifier(model.final_norm(x))
    return (logits, recorded) if record_landmarks is not None else logits


@torch.no_grad()
def stream_logits(model, features, valid=None, chunk=256, steps=None):
    """Logits the continual model must produce at every step: [T, C] (or at the
    given steps only). features [T, D] (any float dtype; cast to the model's)."""
    c = model.c
    features = torch.as_tensor(features).to(model.dtype)
    if c.stacked:
        if steps is None:
            return stacked_stream(model, features, valid, chunk)
        steps = torch.as_tensor(steps, dtype=torch.long)
        last = int(steps.max()) + 1 if len(steps) else 0
        part = None if valid is None else torch.as_tensor(valid)[:last]
        return stacked_stream(model, features[:last], part, chunk)[steps]
    steps = torch.arange(features.shape[0]) if steps is None else torch.as_tensor(steps)
    out = []
    for start in range(0, len(steps), chunk):
        ends = steps[start:start + chunk]
        tokens, times, ok = windows_for(c.window, features, valid, ends)
        out.append(model(tokens, times, ok, step_landmarks(model, features, valid, ends)))
    return torch.cat(out)


@torch.no_grad()
def kernel_condition(model, features, valid=None, steps=None):
    """Per step, the largest condition number of A = softmax(Qt Kt^T) over layers
    and heads, as the exact pinv sees it: sigma_max / the smallest singular value
    it inverts (those above torch.linalg.pinv's default cutoff m * eps * sigma_max;
    a rank-deficient A, e.g. the all-zero landmarks before the first completion,
    is not ill-conditioned for the pinv). How much an exact pinv can amplify
    rounding at that step. [T].

    Stacked assembly: the largest over the receptive field, steps
    t - receptive_field + 1 .. t: the newest logits read lower layers' outputs (and
    continual landmarks made of them) computed at those earlier steps, each with
    the landmarks of its own step, so rounding an ill-conditioned kernel amplified
    there is still in the logits at t."""
    c = model.c
    features = torch.as_tensor(features).to(model.dtype)
    steps = torch.arange(features.shape[0]) if steps is None else torch.as_tensor(steps)
    if c.stacked and c.blocks > 1 and len(steps):
        last = int(steps.max()) + 1
        part = None if valid is None else torch.as_tensor(valid)[:last]
        every = _step_condition(model, features[:last], part, torch.arange(last))
        span = c.receptive_field
        padded = torch.cat([torch.ones(span - 1, dtype=every.dtype), every])
        return padded.unfold(0, span, 1).amax(-1)[steps]
    return _step_condition(model, features, valid, steps)


def _step_condition(model, features, valid, steps):
    """kernel_condition of each step's own landmarks."""
    c = model.c
    landmarks = step_landmarks(model, features, valid, steps)
    if landmarks is None:
        if not c.fixed:
            return torch.ones(len(steps), dtype=model.dtype)
        fixed = [layer.attention.fixed_landmarks() for layer in model.layers]
        landmarks = [(q.expand(len(steps), -1, -1, -1), k.expand(len(steps), -1, -1, -1))
                     for q, k in fixed]
    cond = []
    for q, k in landmarks:
        sigma = torch.linalg.svdvals(torch.softmax(q @ k.transpose(-1, -2), -1))  # descending
        top = sigma[..., :1]
        kept = torch.where(sigma > c.landmarks * torch.finfo(sigma.dtype).eps * top, sigma,
                           torch.full_like(sigma, float("inf")))
        cond.append((top[..., 0] / kept.amin(-1)).amax(-1))
    return torch.stack(cond).amax(0)
