"""Per-token maps on the patch grid: the shared helpers behind the cache
layers' ``cache_maps`` (see :mod:`.cache_layer`)."""
import math
from typing import Optional, Tuple

import torch


def grid_of(tokens: int,
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
    h, w = grid_of(values.shape[1], n_extra, hw_shape)
    return values[:, n_extra:].reshape(values.shape[0], h, w)


def normalise01(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each sample of (B, ...) to [0, 1] (a constant map
    becomes zeros)."""
    flat = x.flatten(1)
    lo = flat.min(1, keepdim=True)[0]
    span = (flat.max(1, keepdim=True)[0] - lo).clamp_min(1e-12)
    return ((flat - lo) / span).view_as(x)
