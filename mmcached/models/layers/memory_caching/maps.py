"""What a Memory Caching layer shows: which segments each token reads
(``tools/analysis/visualize_cache.py``), from the per-token gates of
:mod:`.per_token`."""
import torch

from .per_token import gate_weights


def scan_gate_weights(layer, k: torch.Tensor, u) -> torch.Tensor:
    """Gate weights of one causal scan of ``layer`` over keys k and gate
    queries u (B, L, D) (u None for ``residual``): (B, L, S), mean over
    heads, with the online weight in the token's own segment's column."""
    B, L, _ = k.shape
    k, u = layer.heads(k), layer.heads(u)
    lengths = layer.options.segment_lengths(L)
    out = k.new_zeros(B, layer.num_heads, L, len(lengths))
    cached, start = [], 0
    for s, n in enumerate(lengths):
        seg = slice(start, start + n)
        online = k[:, :, seg].cumsum(2)  # the online context up to t
        g_cached, g_online = gate_weights(None if u is None else u[:, :, seg],
                                          [c[:, :, None] for c in cached],
                                          online, layer.options.aggregation,
                                          layer.options.top_k)
        for i, g in enumerate(g_cached):
            out[:, :, seg, i] = g
        out[:, :, seg, s] = g_online
        cached.append(online[:, :, -1])
        start += n
    return out.mean(1)
