"""Token helpers any cache layer may use."""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F


def _traced() -> bool:
    """torch.compile, torch.export or the ONNX exporter is tracing."""
    return torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def resize_tokens(x: torch.Tensor, length: int) -> torch.Tensor:
    """Nearest-resize tokens (B, N, C) -> (B, length, C), as the released
    module does; a no-op when N == length."""
    # A traced graph keeps the resize (nearest to the same length is the
    # identity), so that it serves every input size: an exported one (ONNX,
    # torch.export) would fail at N != length, and torch.compile would
    # guard on N == length and recompile at the first other size.
    if not _traced() and x.shape[1] == length:
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
