"""The reference for Memory Caching: a straightforward loop over tokens.

It applies the per-token math of :mod:`.per_token` literally, one
token after the other, keeping a Python list of cached memories. It is the
exact definition the tests (in float64) and the benchmark compare the
layer's chunked computation with; it is far too slow for training.
"""
from typing import Optional

import torch

from .options import MCOptions
from .per_token import (aggregate_reads, deep_read, deep_write, gate_weights,
                        linear_read, linear_write, soup_params)


def memory_caching_reference(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        u: Optional[torch.Tensor],
        opts: MCOptions,
        w_in: Optional[torch.Tensor] = None,
        w_out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Causal MC, token by token, as :func:`.chunk.chunk_memory_caching`
    computes it for the same ``opts``. q (already scaled), k, v, u:
    (B, H, L, d) (u may be None for ``residual``); ``w_in`` (H, d, F) /
    ``w_out``
    (H, F, d): the deep memory's initial weights. The deep update takes
    each token's gradient at the weights of its chunk's first token
    (``opts.chunk_size``, chunks of a grid restarted at each segment start;
    1 is exact per-token DLA); the linear memory's ``block_size``,
    ``linear_form`` and ``kernel`` do not change what is computed. Returns
    y (B, H, L, d)."""
    memory, aggregation, top_k = opts.memory, opts.aggregation, opts.top_k
    inner_lr, chunk_size = opts.inner_lr, opts.chunk_size
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
    for n in opts.segment_lengths(L):
        if opts.segment_start == 'restart':
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
    (:class:`~.layer.MemoryCachingAttention`), with the token mixing done
    by :func:`memory_caching_reference`."""
    host, q, k, v, u = layer._project(x, host)
    B, L, D = x.shape

    def run(q, k, v, u):
        y = memory_caching_reference(
            layer.heads(q) * layer.qk_scale,
            layer.heads(k),
            layer.heads(v),
            layer.heads(u),
            layer.options,
            w_in=getattr(layer, 'memory_w_in', None),
            w_out=getattr(layer, 'memory_w_out', None))
        return y.transpose(1, 2).reshape(B, L, D)

    if layer.causal:
        y = run(q, k, v, u)
    else:
        flip = [None if t is None else t.flip(1) for t in (q, k, v, u)]
        y = 0.5 * (run(q, k, v, u) + run(*flip).flip(1))
    return host.project_out(y)
