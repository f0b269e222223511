"""flash-linear-attention's chunked kernels for the within-segment part of
the linear memory (CUDA only, optional).

What it computes, per batch element and head, for every segment: causal
linear attention over the segment's own tokens from a zero state (the
first segment of a continued stream starts from the carried state),
``y_t = q_t sum_{j <= t, j in segment} k_j^T v_j``, and the segment's final
state ``S = K^T V`` (d_k x d_v). That is the online read and the segment
states of :mod:`.chunk`; the gates, the cached read and
the aggregation stay in PyTorch. The segments are passed to fla's chunked
linear attention (``chunk_simple_gla`` without decay, the kernel behind
its ``chunk_linear_attn``) as variable-length sequences (``cu_seqlens``,
and the CPU copy fla accepts for planning its chunks), so any segment
lengths work (the last one shorter, logarithmic, uniform).

Limits, stated up front:

- CUDA tensors in float32 or half precision only (the mixing computes in
  float32, autocast included), and heads of 16 to 256 channels (Triton's
  matmul tiles); anything else takes the PyTorch path.
- fla's Triton kernels multiply float32 in TF32 unless
  ``TRITON_F32_DEFAULT=ieee`` is set: against float64, errors of up to
  about 1e-3 of the largest output or gradient (measured on an H200 at
  d = 64, L = 4096), where the PyTorch path in float32 stays near 1e-5.
- A step makes a few synchronising CUDA calls inside fla's variable-length
  set-up (4 per training step measured); the PyTorch path makes none. Below
  ~2K tokens per sequence the PyTorch path was faster; fla's gain is
  memory (30% less peak at batch 8, 16K tokens). ``docs/mc.md`` has the
  figures.
- Needs ``fla-core`` (``pip install fla-core``, or the
  ``flash-linear-attention`` extra); tested with 0.6.0.
"""
from functools import lru_cache
from typing import List, Optional, Tuple

import torch


@lru_cache(maxsize=None)
def fla_available() -> bool:
    """Whether fla's linear attention kernel imports (and CUDA is there)."""
    if not torch.cuda.is_available():
        return False
    try:
        from fla.ops.simple_gla import chunk_simple_gla  # noqa: F401
    except Exception:  # not installed, or no usable Triton
        return False
    return True


def fla_usable(q: torch.Tensor) -> bool:
    """Whether a call on ``q`` can take the fla path."""
    return q.is_cuda and q.dtype in (torch.float32, torch.float16,
                                     torch.bfloat16) and \
        16 <= q.shape[-1] <= 256 and fla_available()


def fla_segments(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    seg_lens: List[int],
    initial: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Within-segment linear attention and segment states.

    q (scaled), k, v (B, H, L, d); ``seg_lens`` sum to L; ``initial``
    (B, H, d, d) or None: the first segment's starting state. Returns
    (online (B, H, L, d), states (B, H, S, d, d)), state = K^T V of the
    segment (plus ``initial`` for the first)."""
    from fla.ops.simple_gla import chunk_simple_gla
    B, H, L, d = q.shape
    S = len(seg_lens)
    starts = torch.tensor([0] + seg_lens[:-1]).cumsum(0)
    cu = torch.cat([(starts[None] + L * torch.arange(B)[:, None]).flatten(),
                    torch.tensor([B * L])])

    def flat(t):  # (B, H, L, d) -> fla's (1, B * L, H, d), one row a token
        return t.transpose(1, 2).reshape(1, B * L, H, d)

    h0 = None
    if initial is not None:
        h0 = torch.cat(
            [initial[:, None],
             initial.new_zeros(B, S - 1, H, d, d)], 1).flatten(0, 1)
    y, states = chunk_simple_gla(
        flat(q),
        flat(k),
        flat(v),
        scale=1.0,
        initial_state=h0,
        output_final_state=True,
        cu_seqlens=cu.to(q.device, non_blocking=True),
        cu_seqlens_cpu=cu)
    return (y.reshape(B, L, H,
                      d).transpose(1, 2), states.reshape(B, S, H, d,
                                                         d).transpose(1, 2))
