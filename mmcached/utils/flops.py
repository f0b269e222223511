"""FLOP counting for attention written with ``F.scaled_dot_product_attention``.

mmengine's analyzer (``mmengine.analysis``) traces the model and counts only
the ops it has a handle for; ``aten::scaled_dot_product_attention`` is not one
of them, so every SDPA-based attention (ours, and torch's own) is counted as
free. :func:`register_sdpa_flop_handle` (applied with the other mmengine
patches by :func:`mmcached.utils.compat.apply`) adds a handle to mmengine's
default table, so
``mmengine.analysis.get_model_complexity_info`` and ``FlopAnalyzer`` created
afterwards count SDPA like the same attention written with matmuls: one
multiply-add per element of Q K^T and of A V (mmengine counts MACs and calls
them FLOPs). Softmax, scaling and masks are not counted, as for matmul code.
"""
from typing import Any, List

from mmengine.analysis import complexity_analysis
from mmengine.analysis import \
    get_model_complexity_info as _mm_get_model_complexity_info
from mmengine.analysis.jit_handles import get_shape

SDPA_OP = 'aten::scaled_dot_product_attention'


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``scaled_dot_product_attention(q, k, v, ...)``.

    q: (*batch, L, E), k: (*batch, S, E), v: (*batch, S, Ev) (batch dims may
    broadcast, e.g. grouped key/value heads): ``prod(batch) * L * S * E`` for
    Q K^T plus ``prod(batch) * L * S * Ev`` for A V, where ``batch`` is the
    query's (the output's) leading shape.
    """
    q_shape = get_shape(inputs[0])
    k_shape = get_shape(inputs[1])
    v_shape = get_shape(inputs[2])
    assert len(q_shape) >= 2 and q_shape[-1] == k_shape[-1], (q_shape, k_shape)
    batch = 1
    for d in q_shape[:-2]:
        batch *= d
    length, embed = q_shape[-2], q_shape[-1]
    source = k_shape[-2]
    return batch * length * source * (embed + v_shape[-1])


def register_sdpa_flop_handle() -> None:
    """Add the SDPA handle to mmengine's default FLOP handles (idempotent).

    Analyzers read that table when they are created, so this covers every
    ``FlopAnalyzer`` / ``get_model_complexity_info`` call made afterwards.
    """
    complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.setdefault(
        SDPA_OP, sdpa_flop_jit)


def get_model_complexity_info(*args, **kwargs) -> dict:
    """mmengine's ``get_model_complexity_info`` with SDPA counted; same
    arguments and returned dict (``flops``, ``params``, ...)."""
    register_sdpa_flop_handle()
    return _mm_get_model_complexity_info(*args, **kwargs)


__all__ = [
    'sdpa_flop_jit', 'register_sdpa_flop_handle', 'get_model_complexity_info',
    'SDPA_OP'
]
