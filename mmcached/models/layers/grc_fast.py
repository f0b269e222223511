"""Fast paths of GRC attention: custom autograd nodes that compute what the
plain code of :mod:`.grc_attention` computes, in fewer passes.

A node stays only where ``tools/analysis/benchmark_grc.py`` shows it saves at
least 10% of the layer's forward + backward time (docs/grc.md has the
figures): ``head_mix``, the per-head mix of step 6 with the positional term.

Limits, the same for every node: a node runs only where :func:`applies` says
so, i.e. it is switched on, grad is enabled, nothing is traced or scripted
(FLOP counting and export must see the plain ops), autocast is off (it casts
per op) and all its tensors share one floating dtype. Everywhere else the
plain ops run. Each node is float64-gradchecked and compared with the plain
ops in ``tests/test_models/test_layers/test_grc_fast.py``.

The switch: :func:`set_fast_path` (``True``, ``False`` or node names) or,
read once at import, the environment variable ``MMCACHED_GRC_FAST`` (``1`` /
``0``, or comma-separated node names). Default: every node on.
"""
import contextlib
import os
from typing import Iterable, Union

import torch

#: The nodes, by name.
NODES = ('head_mix', )


def _parse(value: Union[bool, str, Iterable[str]]) -> frozenset:
    if isinstance(value, bool):
        return frozenset(NODES if value else ())
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ('1', 'true', 'on', 'all', ''):
            return frozenset(NODES)
        if text in ('0', 'false', 'off', 'none'):
            return frozenset()
        value = [v.strip() for v in text.split(',') if v.strip()]
    names = frozenset(value)
    unknown = sorted(names - set(NODES))
    if unknown:
        raise ValueError(f'unknown GRC fast node(s) {unknown}; choose from '
                         f'{NODES}, or True / False')
    return names


_enabled = _parse(os.environ.get('MMCACHED_GRC_FAST', '1'))


def set_fast_path(enabled: Union[bool, str, Iterable[str]]) -> frozenset:
    """Switch the fast nodes: True (all), False (none), or the names of the
    nodes to use. Returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, _parse(enabled)
    return previous


@contextlib.contextmanager
def fast_path(enabled: Union[bool, str, Iterable[str]]):
    """:func:`set_fast_path` for the duration of a ``with`` block."""
    previous = set_fast_path(enabled)
    try:
        yield
    finally:
        set_fast_path(previous)


def enabled_nodes() -> frozenset:
    return _enabled


def applies(node: str, *tensors: torch.Tensor) -> bool:
    """Whether ``node`` runs on ``tensors`` (see the module docstring)."""
    if node not in _enabled or not torch.is_grad_enabled() or \
            torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    t0 = tensors[0]
    if torch.is_autocast_enabled(t0.device.type) or \
            not t0.dtype.is_floating_point:
        return False
    return all(t.dtype == t0.dtype for t in tensors)


# ---------------------------------------------------------------------------
# head_mix: step 6 of GRC (the per-head mix, plus the positional term)
# ---------------------------------------------------------------------------
def head_mix(o_self, o_mem, alpha, extra=None):
    """a_h * [o_mem^h, 0] + (1 - a_h) * o_self^h (+ extra) in one node;
    o_self (B, N, H, D/H), o_mem (B, N, H, d <= D/H), alpha (H, ), extra
    any shape of B * N * D elements."""
    return _HeadMix.apply(o_self, o_mem, alpha, extra)


def _per_head_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of a * b per head, in fp32; a, b: (B, N, H, c) -> (H, ). One
    contiguous fp32 head is a BLAS dot (no product tensor)."""
    if a.shape[2] == 1 and a.dtype == b.dtype == torch.float32 and \
            a.is_contiguous() and b.is_contiguous():
        return torch.dot(a.view(-1), b.view(-1)).view(1)
    return (a * b).sum((0, 1, 3), dtype=torch.float32)


class _HeadMix(torch.autograd.Function):
    """The mix in two passes instead of about eight (pad, the two products,
    the sum and the add, forward and backward)."""

    @staticmethod
    def forward(ctx, o_self, o_mem, alpha, extra=None):
        a = alpha.view(1, 1, -1, 1)
        if extra is None:
            out = o_self * (1 - a)
        else:
            out = torch.addcmul(extra.reshape(o_self.shape), o_self, 1 - a)
        out[..., :o_mem.shape[-1]].addcmul_(o_mem, a)
        ctx.save_for_backward(o_self, o_mem, alpha)
        ctx.extra_shape = None if extra is None else extra.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        o_self, o_mem, alpha = ctx.saved_tensors
        a = alpha.view(1, 1, -1, 1)
        g_mem = grad[..., :o_mem.shape[-1]]
        g_self = grad * (1 - a) if ctx.needs_input_grad[0] else None
        g_o_mem = g_mem * a if ctx.needs_input_grad[1] else None
        g_alpha = None
        if ctx.needs_input_grad[2]:
            # d out / d a = [o_mem, 0] - o_self, summed per head in fp32
            g_alpha = (_per_head_dot(g_mem, o_mem) -
                       _per_head_dot(grad, o_self)).to(alpha.dtype)
        g_extra = grad.reshape(ctx.extra_shape) \
            if ctx.extra_shape is not None and ctx.needs_input_grad[3] \
            else None
        return g_self, g_o_mem, g_alpha, g_extra
