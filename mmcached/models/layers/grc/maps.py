"""What a GRC layer shows: the paper's Fig. 6 maps and its stored cache as
a picture (``tools/analysis/visualize_cache.py``)."""
import math
from typing import Tuple

import torch

from ..maps import grid_of, normalise01, token_map


@torch.no_grad()
def output_maps(layer, x: torch.Tensor, o_self: torch.Tensor, hw_shape,
                mem: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fig. 6 for one layer: its self-attention output o_self (B, N, D) and
    its cache-attention output from the updated cache ``mem``
    (B, T_m, D_m), each averaged over heads and channels per token, on the
    patch grid, normalised to [0, 1]. Returns two (B, h, w) tensors."""
    o_mem = layer.cache_attention(x[..., :layer.cache_dims], mem)
    n = layer.num_extra_tokens
    maps = [
        normalise01(token_map(o.float().mean(-1), n, hw_shape))
        for o in (o_self, o_mem)
    ]
    return maps[0], maps[1]


def cache_grid(layer) -> Tuple[int, Tuple[int, int]]:
    """(leading tokens to skip, (h, w)) of the stored cache's token grid:
    its ``cache_grid``, else the patch grid when the cache holds the extra
    tokens plus a square (ViT's default length), else one row."""
    if layer.cache_grid is not None:
        return 0, tuple(layer.cache_grid)
    n, extra = layer.cache_len, layer.num_extra_tokens
    if extra and n > extra and math.isqrt(n - extra)**2 == n - extra:
        return extra, grid_of(n, extra)
    return 0, grid_of(n, 0)


@torch.no_grad()
def cache_pca(layer, components: int = 3) -> torch.Tensor:
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
