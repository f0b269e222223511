"""Token helpers any cache layer may use."""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F


def _exporting() -> bool:
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def resize_tokens(x: torch.Tensor, length: int) -> torch.Tensor:
    """Nearest-resize tokens (B, N, C) -> (B, length, C), as the released
    module does; a no-op when N == length."""
    # An exported graph (ONNX, torch.export) keeps the resize, so that it
    # serves every input size, not only those with N == length.
    if not _exporting() and x.shape[1] == length:
        return x
    return F.interpolate(
        x.transpose(1, 2), size=length, mode='nearest').transpose(1, 2)


def patch_grid(N: int, n_extra: int,
               hw_shape: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """The (h, w) grid of the N - n_extra patch tokens: ``hw_shape``, or a
    square when None (as the released code assumes); an error when they do
    not match."""
    if hw_shape is None:
        side = math.isqrt(N - n_extra)
        hw_shape = (side, side)
    if hw_shape[0] * hw_shape[1] + n_extra != N:
        raise ValueError(
            f'hw_shape {tuple(hw_shape)} + {n_extra} extra tokens does '
            f'not match {N} tokens')
    return tuple(hw_shape)
