"""Per-step batch reference for a whole stream, as tests/core/reference.h derives it:
step t sees the window of n tokens ending at t, zero-padded before time 0 (padding
and dropped tokens are invalid: q = k = v = 0 in every layer), with the landmarks
the schedule holds after ingesting token t:
  fixed: the model's;
  continual: the segment means of the window ending at the last completion
  c = floor((t+1)/L)*L - 1 (zeros while c < 0), per layer as
  NystreamModel.window_landmarks computes them.
"""
import torch


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


@torch.no_grad()
def stream_logits(model, features, valid=None, chunk=256, steps=None):
    """Logits the continual model must produce at every step: [T, C] (or at the
    given steps only). features [T, D] (any float dtype; cast to the model's)."""
    c = model.c
    features = torch.as_tensor(features).to(model.dtype)
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
    rounding at that step. [T]."""
    c = model.c
    features = torch.as_tensor(features).to(model.dtype)
    steps = torch.arange(features.shape[0]) if steps is None else torch.as_tensor(steps)
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
