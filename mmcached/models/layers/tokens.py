"""Token helpers any cache layer may use."""
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
