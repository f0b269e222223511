"""What the cache layers do on one image, as maps on their token grids.

:class:`CacheRecorder` records, during one forward pass, what every cache
layer receives; the functions below turn that into pictures' data, one small
function per kind of cache layer:

- GRC (a mixing layer): :func:`grc_output_maps` (the self-attention and the
  cache-attention outputs, as the paper's Fig. 6) and :func:`cache_pca` (the
  stored cache's first principal components as RGB);
- Memory Caching (a replacing layer): :func:`mc_gate_weights` (the gate
  weight each token gives each segment), from the MC layer's own per-token
  math (``gate_weights``, ``segment_lengths``).

A new kind of cache layer adds its own function here and its own figure in
``tools/analysis/visualize_cache.py``.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from mmcached.models.layers.grc_attention import GRCAttention
from mmcached.models.layers.memory_caching import (MemoryCachingAttention,
                                                   gate_weights,
                                                   segment_lengths)


class CacheRecorder:
    """Context manager recording, for every cache layer in ``layers``
    (name -> layer), the arguments of its forward and, for GRC, the
    per-sample updated cache C_t its cache attention reads.

    After the forward, ``records[name]`` is a dict: ``args`` (the layer's
    positional arguments: ``(x, o_self, hw_shape)`` for a mixing layer,
    ``(x, hw_shape, host)`` for a replacing one) and, for GRC, ``mem``
    (B, T_m, D_m). A layer called several times keeps its last call.
    """

    def __init__(self, layers: Dict[str, nn.Module]):
        self.layers = layers
        self.records: Dict[str, dict] = {}
        self._handles = []

    def __enter__(self):
        for name, layer in self.layers.items():
            rec = self.records.setdefault(name, {})
            self._handles.append(
                layer.register_forward_hook(
                    self._keep_args(rec), with_kwargs=True))
            if isinstance(layer, GRCAttention):
                self._handles.append(
                    layer.cache.register_forward_hook(self._keep_mem(rec)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []

    @staticmethod
    def _keep_args(rec):

        def hook(module, args, kwargs, output):
            rec['args'] = tuple(args) + tuple(kwargs.values())

        return hook

    @staticmethod
    def _keep_mem(rec):

        def hook(module, args, output):
            rec['mem'] = output.detach()

        return hook


def _grid_of(tokens: int,
             n_extra: int,
             hw_shape: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """(h, w) of ``tokens - n_extra`` patch tokens: ``hw_shape`` when given,
    a square when they make one, else one row."""
    n = tokens - n_extra
    if hw_shape is not None:
        if hw_shape[0] * hw_shape[1] != n:
            raise ValueError(f'grid {tuple(hw_shape)} does not hold {n} '
                             'tokens')
        return tuple(hw_shape)
    side = math.isqrt(n)
    return (side, side) if side * side == n else (1, n)


def token_map(values: torch.Tensor, n_extra: int,
              hw_shape: Optional[Tuple[int, int]]) -> torch.Tensor:
    """Per-token values (B, N) -> (B, h, w) on the patch grid (the
    ``n_extra`` leading tokens dropped)."""
    h, w = _grid_of(values.shape[1], n_extra, hw_shape)
    return values[:, n_extra:].reshape(values.shape[0], h, w)


def normalise01(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each sample of (B, ...) to [0, 1] (a constant map
    becomes zeros)."""
    flat = x.flatten(1)
    lo = flat.min(1, keepdim=True)[0]
    span = (flat.max(1, keepdim=True)[0] - lo).clamp_min(1e-12)
    return ((flat - lo) / span).view_as(x)


# ---------------------------------------------------------------- GRC
@torch.no_grad()
def grc_output_maps(layer: GRCAttention,
                    record: dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """The paper's Fig. 6 for one GRC layer: its self-attention output
    o_self and its cache-attention output o_mem, each averaged over heads
    and channels per token, on the patch grid, normalised to [0, 1].
    Returns two (B, h, w) tensors."""
    x, o_self, hw_shape = record['args'][:3]
    o_mem = layer.cache_attention(x[..., :layer.cache_dims], record['mem'])
    n = layer.num_extra_tokens
    maps = [
        normalise01(token_map(o.float().mean(-1), n, hw_shape))
        for o in (o_self, o_mem)
    ]
    return maps[0], maps[1]


def cache_grid(layer: GRCAttention) -> Tuple[int, Tuple[int, int]]:
    """(leading tokens to skip, (h, w)) of the stored cache's token grid:
    its ``cache_grid``, else the patch grid when the cache holds the extra
    tokens plus a square (ViT's default length), else one row."""
    if layer.cache_grid is not None:
        return 0, tuple(layer.cache_grid)
    n, extra = layer.cache_len, layer.num_extra_tokens
    if extra and n > extra and math.isqrt(n - extra)**2 == n - extra:
        return extra, _grid_of(n, extra)
    return 0, _grid_of(n, 0)


@torch.no_grad()
def cache_pca(layer: GRCAttention, components: int = 3) -> torch.Tensor:
    """The stored cache (1, T_m, D_m) projected on its first ``components``
    principal components (over tokens), each scaled to [0, 1], on the
    cache's token grid: (h, w, components), an RGB picture for 3."""
    skip, (h, w) = cache_grid(layer)
    mem = layer.cache.memory[0, skip:].float()  # (T, D_m)
    centred = mem - mem.mean(0, keepdim=True)
    k = min(components, *centred.shape)
    # full_matrices=False: (T, k) scores from the top right-singular vectors
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    scores = u[:, :k] * s[:k]
    if k < components:  # fewer tokens or channels than components
        scores = torch.cat(
            [scores, scores.new_zeros(len(scores), components - k)], 1)
    return normalise01(scores.t()).t().reshape(h, w, components)


# ---------------------------------------------------------------- MC
def is_mc_layer(layer: nn.Module) -> bool:
    return isinstance(layer, MemoryCachingAttention)


@torch.no_grad()
def mc_gate_weights(layer: nn.Module, record: dict) -> List[torch.Tensor]:
    """Which segments each token reads in a Memory Caching layer: per scan
    (one for a causal layer; forward then reversed for ``causal=False``), a
    (B, L, S) tensor, mean over heads, whose row t holds the gate weight of
    each cached segment i < s(t), the online weight in column s(t) (the
    token's own segment) and 0 after it. Rows sum to 1, except for
    ``residual`` aggregation (no gates: every weight is 1). Tokens are in
    raster order, extra tokens first."""
    x, _, host = record['args'][:3]
    host = layer if host is None else host
    _, k, _ = host.project_qkv(x)
    u = layer.u_proj(x) if layer.u_proj is not None else None
    out = [_mc_scan_gates(layer, k, u)]
    if not layer.causal:
        # the reversed scan, its rows put back in raster order (its
        # segment 0 is then the last segment in raster order)
        flipped = None if u is None else u.flip(1)
        out.append(_mc_scan_gates(layer, k.flip(1), flipped).flip(1))
    return out


def _mc_scan_gates(layer, k, u) -> torch.Tensor:
    """Gate weights of one causal scan: (B, L, S), mean over heads."""
    B, L, _ = k.shape
    H, d = layer.num_heads, layer.head_dims

    def heads(t):
        return None if t is None else t.reshape(B, L, H, d).transpose(1, 2)

    k, u = heads(k), heads(u)
    lengths = segment_lengths(L, layer.segmentation, layer.segment_size,
                              layer.num_segments)
    out = k.new_zeros(B, H, L, len(lengths))
    cached, start = [], 0
    for s, n in enumerate(lengths):
        seg = slice(start, start + n)
        online = k[:, :, seg].cumsum(2)  # the online context up to t
        g_cached, g_online = gate_weights(None if u is None else u[:, :, seg],
                                          [c[:, :, None]
                                           for c in cached], online,
                                          layer.aggregation, layer.top_k)
        for i, g in enumerate(g_cached):
            out[:, :, seg, i] = g
        out[:, :, seg, s] = g_online
        cached.append(online[:, :, -1])
        start += n
    return out.mean(1)
