"""Memory Caching, one token at a time: the method's math as plain
functions (Behrouz et al., "Memory Caching: RNNs with Growing Memory",
arXiv 2602.24281). See ``docs/mc.md`` for the choices made here.

Per head (d channels), for token t of segment s (causal):

- memory: ``linear`` (M_t = M_{t-1} + v_t k_t^T, read M q) or ``deep``
  (M(x) = x + gelu(x W_in) W_out, hidden F = 4d, written by one gradient
  step on the DLA inner loss -<M(k_t), v_t>);
- segments: ``constant`` (length C) or ``logarithmic`` (binary expansion of
  L); the online memory starts each segment from the previous segment's
  final state (``checkpoint``) or from the initial state (``restart``);
- cached memory i < s: the state at the end of segment i; its context
  c^(i) is the sum of segment i's keys, the online one's the sum up to t;
- gates g = softmax_i <u_t, c^(i)> over the cached segments and the online
  one, then one of four aggregations:
  ``residual`` y = m^(s) + sum_{i<s} m^(i)  (no gates),
  ``grm``      y = sum_{i<=s} g_i m^(i),
  ``soup``     y = M_{sum_i g_i theta^(i)}(q_t)  (one read of mixed weights),
  ``ssc``      as grm over the top-k cached segments by <u_t, c^(i)> plus
  the online one.

The float64 reference loop (:mod:`.naive`) applies these literally; the
layer computes the same without a token loop (:mod:`.chunk`).
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

Theta = Tuple[torch.Tensor, torch.Tensor]  # deep memory (W_in, W_out)


# --------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------
def segment_lengths(length: int,
                    segmentation: str = 'constant',
                    segment_size: Optional[int] = 256,
                    num_segments: Optional[int] = None) -> List[int]:
    """Segment lengths of a sequence of ``length`` tokens, in order.

    ``constant``: ``segment_size`` each, the last one shorter if it does not
    divide. ``logarithmic``: the binary expansion of ``length``, largest
    first (37 -> [32, 4, 1]). ``uniform`` (ours, for images):
    ``num_segments`` segments of (nearly) equal length, the longer ones first
    (37 in 4 -> [10, 9, 9, 9]); fewer if there are fewer tokens.
    """
    if length < 1:
        return []
    if segmentation == 'constant':
        full, rest = divmod(length, segment_size)
        return [segment_size] * full + ([rest] if rest else [])
    if segmentation == 'uniform':
        n = min(num_segments, length)
        base, rest = divmod(length, n)
        return [base + 1] * rest + [base] * (n - rest)
    if segmentation == 'logarithmic':
        return [
            1 << b for b in reversed(range(length.bit_length()))
            if length >> b & 1
        ]
    raise ValueError("segmentation must be one of ('constant', "
                     f"'logarithmic', 'uniform'), got {segmentation!r}")


# --------------------------------------------------------------------------
# Memories, one token at a time; leading dims (B, H) are batch dims.
# --------------------------------------------------------------------------
def linear_write(M: torch.Tensor, k: torch.Tensor,
                 v: torch.Tensor) -> torch.Tensor:
    """M (.., d, d) + v k^T."""
    return M + v[..., :, None] * k[..., None, :]


def linear_read(M: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """M q: (.., d, d), (.., d) -> (.., d)."""
    return (M @ q[..., :, None])[..., 0]


def gelu_grad(z: torch.Tensor) -> torch.Tensor:
    """d gelu(z) / dz for the exact (erf) GELU, written so that autograd can
    differentiate it again (the outer training loop does)."""
    return 0.5 * (1 + torch.erf(z * 0.5**0.5)) + \
        z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def deep_read(theta: Theta, x: torch.Tensor) -> torch.Tensor:
    """M(x) = x + gelu(x W_in) W_out; W_in (.., d, F), W_out (.., F, d),
    x (.., d) -> (.., d)."""
    w_in, w_out = theta
    hidden = F.gelu(x[..., None, :] @ w_in)
    return x + (hidden @ w_out)[..., 0, :]


def deep_gradient(theta: Theta, k: torch.Tensor, v: torch.Tensor) -> Theta:
    """Gradient of <M(k), v> with respect to (W_in, W_out); the DLA inner
    loss is its negative, so a step of gradient descent adds it."""
    w_in, w_out = theta
    z = k[..., None, :] @ w_in  # (.., 1, F)
    delta = (v[..., None, :] @ w_out.transpose(-1, -2)) * gelu_grad(z)
    return (k[..., :, None] * delta,
            F.gelu(z).transpose(-1, -2) * v[..., None, :])


def deep_write(theta: Theta, anchor: Theta, k: torch.Tensor, v: torch.Tensor,
               lr: float) -> Theta:
    """theta + lr * grad <M_anchor(k), v>. The exact per-token update takes
    the gradient at theta itself (anchor = theta); the chunk-parallel form
    takes every token's gradient at the chunk's first weights."""
    g_in, g_out = deep_gradient(anchor, k, v)
    return theta[0] + lr * g_in, theta[1] + lr * g_out


# --------------------------------------------------------------------------
# Gates and aggregation, one token at a time
# --------------------------------------------------------------------------
def gate_weights(
        u: torch.Tensor,
        cached_keys: Sequence[torch.Tensor],
        online_keys: torch.Tensor,
        aggregation: str,
        top_k: Optional[int] = None
) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Weights of the cached memories and of the online one for one token.

    u, online_keys (.., d); cached_keys: one (.., d) key sum per cached
    segment. Returns ([g_i (..)] per cached segment, g_online (..)).
    ``residual``: all 1. ``grm`` / ``soup``: softmax of <u, c> over the
    cached segments and the online one. ``ssc``: the same softmax over the
    top-k cached segments (by <u, c>) and the online one, 0 elsewhere.
    """
    if aggregation == 'residual':
        one = torch.ones_like(online_keys[..., 0])
        return [one for _ in cached_keys], one
    scores = [(u * c).sum(-1) for c in cached_keys]
    if aggregation == 'ssc' and len(scores) > top_k:
        # the top-k per (batch, head) element; the others get weight 0
        stacked = torch.stack(scores, -1)
        chosen = stacked.topk(top_k, dim=-1).indices
        kept = torch.zeros_like(
            stacked, dtype=torch.bool).scatter(-1, chosen, True)
        scores = [
            s.masked_fill(~kept[..., i], float('-inf'))
            for i, s in enumerate(scores)
        ]
    online = (u * online_keys).sum(-1)
    g = torch.softmax(torch.stack(scores + [online], -1), -1)
    return list(g[..., :-1].unbind(-1)), g[..., -1]


def aggregate_reads(reads: Sequence[torch.Tensor], read_online: torch.Tensor,
                    g_cached: Sequence[torch.Tensor],
                    g_online: torch.Tensor) -> torch.Tensor:
    """sum_i g_i m^(i) + g_online m^(s): residual, grm and ssc."""
    y = g_online[..., None] * read_online
    for g, m in zip(g_cached, reads):
        y = y + g[..., None] * m
    return y


def soup_params(thetas: Sequence[Tuple[torch.Tensor, ...]],
                theta_online: Tuple[torch.Tensor,
                                    ...], g_cached: Sequence[torch.Tensor],
                g_online: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Memory soup: parameters sum_i g_i theta^(i) + g_online theta^(s)."""

    def scale(g, p):
        return g.reshape(g.shape + (1, ) * (p.dim() - g.dim())) * p

    mixed = [scale(g_online, p) for p in theta_online]
    for g, theta in zip(g_cached, thetas):
        mixed = [m + scale(g, p) for m, p in zip(mixed, theta)]
    return tuple(mixed)
