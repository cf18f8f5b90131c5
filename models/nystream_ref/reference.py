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
        landmarks = None
        if c.continual:
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
        out.append(model(tokens, times, ok, landmarks))
    return torch.cat(out)
