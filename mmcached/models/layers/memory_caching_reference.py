"""The reference for Memory Caching: a straightforward loop over tokens.

It applies the per-token math of :mod:`.memory_caching` literally, one
token after the other, keeping a Python list of cached memories. It is the
exact definition the tests (in float64) and the benchmark compare the
layer's chunked computation with; it is far too slow for training.
"""
from typing import Optional

import torch

from .memory_caching import (aggregate_reads, deep_read, deep_write,
                             gate_weights, linear_read, linear_write,
                             segment_lengths, soup_params)


def memory_caching_reference(q: torch.Tensor,
                             k: torch.Tensor,
                             v: torch.Tensor,
                             u: Optional[torch.Tensor],
                             memory: str = 'linear',
                             segmentation: str = 'constant',
                             segment_size: Optional[int] = 256,
                             num_segments: Optional[int] = None,
                             segment_start: str = 'checkpoint',
                             aggregation: str = 'grm',
                             top_k: Optional[int] = None,
                             w_in: Optional[torch.Tensor] = None,
                             w_out: Optional[torch.Tensor] = None,
                             inner_lr: float = 1.0,
                             chunk_size: int = 1,
                             **unused) -> torch.Tensor:
    """Causal MC, token by token. q (already scaled), k, v, u: (B, H, L, d)
    (u may be None for ``residual``); ``w_in`` (H, d, F) / ``w_out``
    (H, F, d): the deep memory's initial weights. ``chunk_size``: the deep
    update takes each token's gradient at the weights of its chunk's first
    token (chunks of a grid restarted at each segment start); 1 is exact
    per-token DLA. Returns y (B, H, L, d)."""
    B, H, L, d = q.shape
    if memory == 'linear':
        init = (q.new_zeros(B, H, d, d), )

        def read(theta, x):
            return linear_read(theta[0], x)
    else:
        init = (w_in.to(q.dtype).expand(B, H, *w_in.shape[1:]),
                w_out.to(q.dtype).expand(B, H, *w_out.shape[1:]))
        read = deep_read
    cached, cached_keys, outputs = [], [], []
    online, t = init, 0
    for n in segment_lengths(L, segmentation, segment_size, num_segments):
        if segment_start == 'restart':
            online = init
        keys = q.new_zeros(B, H, d)
        for i in range(n):
            qt, kt, vt = q[:, :, t], k[:, :, t], v[:, :, t]
            if memory == 'linear':
                online = (linear_write(online[0], kt, vt), )
            else:
                if i % chunk_size == 0:
                    anchor = online
                online = deep_write(online, anchor, kt, vt, inner_lr)
            keys = keys + kt
            g_c, g_on = gate_weights(None if u is None else u[:, :, t],
                                     cached_keys, keys, aggregation, top_k)
            if aggregation == 'soup':
                y = read(soup_params(cached, online, g_c, g_on), qt)
            else:
                y = aggregate_reads([read(m, qt) for m in cached],
                                    read(online, qt), g_c, g_on)
            outputs.append(y)
            t += 1
        cached.append(online)
        cached_keys.append(keys)
    return torch.stack(outputs, 2)


def memory_caching_reference_layer(layer,
                                   x: torch.Tensor,
                                   host=None) -> torch.Tensor:
    """What ``layer(x, host=host)`` computes
    (:class:`~.memory_caching.MemoryCachingAttention`), with the token
    mixing done by :func:`memory_caching_reference`."""
    host, q, k, v, u = layer._project(x, host)
    B, L, D = x.shape
    H, d = layer.num_heads, layer.head_dims
    opts = layer._options()

    def run(q, k, v, u):

        def heads(t):
            return None if t is None else \
                t.reshape(B, L, H, d).transpose(1, 2)

        y = memory_caching_reference(
            heads(q) * layer.qk_scale,
            heads(k),
            heads(v),
            heads(u),
            w_in=getattr(layer, 'memory_w_in', None),
            w_out=getattr(layer, 'memory_w_out', None),
            **opts)
        return y.transpose(1, 2).reshape(B, L, D)

    if layer.causal:
        y = run(q, k, v, u)
    else:
        flip = [None if t is None else t.flip(1) for t in (q, k, v, u)]
        y = 0.5 * (run(q, k, v, u) + run(*flip).flip(1))
    return host.project_out(y)
