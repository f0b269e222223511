"""Fast paths of GRC attention: custom autograd nodes that compute what the
plain code of :mod:`.grc_attention` computes, in fewer passes.

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
from typing import Iterable, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

#: The nodes, by name.
NODES = ('cache_update', 'head_mix', 'pair_conv')


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
# cache_update: steps 2-4 of GRC (GatedRecurrentCache.update) in one node
# ---------------------------------------------------------------------------
def cache_update_fits(cache: nn.Module) -> bool:
    """The node computes the released candidate norm as a plain LayerNorm
    (1-d, affine) or the paper's identity."""
    norm = cache.candidate_norm
    return isinstance(norm, nn.Identity) or (
        type(norm) is nn.LayerNorm and norm.elementwise_affine
        and norm.bias is not None and len(norm.normalized_shape) == 1)


def cache_update(cache: nn.Module, summary: torch.Tensor,
                 mem: torch.Tensor) -> torch.Tensor:
    """``cache.update(summary, mem)`` as one autograd node."""
    norm = cache.candidate_norm
    released = cache.mode == 'released'
    ln_w, ln_b, eps = (norm.weight, norm.bias, norm.eps) if released \
        else (None, None, 0.)
    return _CacheUpdate.apply(summary, mem, cache.gates.weight,
                              cache.gates.bias, cache.candidate.weight,
                              cache.candidate.bias, ln_w, ln_b, eps, released)


def _columns(weight: torch.Tensor, d: int,
             cache_first: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(summary, cache) columns of a weight (*, 2d) on [C; s] (released)
    or [s; C] (paper), as GatedRecurrentCache.columns."""
    if cache_first:
        return weight[:, d:], weight[:, :d]
    return weight[:, :d], weight[:, d:]


class _CacheUpdate(torch.autograd.Function):
    """C_t = C + g_u * (C~ - C) in one node.

    summary S: (B, T, d); mem C: (1, T, d), a copy of the buffer (no grad);
    w_g (2d, 2d) / w_c (d, 2d): gate and candidate weights on [C; S]
    (``cache_first``) or [S; C]; ln_w / ln_b: the released candidate's
    LayerNorm, or None (paper). Fewer passes over (B, T, d) tensors than the
    plain ops: the backward writes both gates' gradients into one buffer and
    each weight's gradient by column block (no concat, no zero-filled slice
    gradients summed), sums S's two gradients inside one GEMM and computes
    no gradient for C.
    """

    @staticmethod
    def forward(ctx, S, mem, w_g, b_g, w_c, b_c, ln_w, ln_b, eps,
                cache_first):
        B, T, d = S.shape
        S2 = S.reshape(B * T, d)
        w_gs, w_gm = _columns(w_g, d, cache_first)
        w_cs, w_cm = _columns(w_c, d, cache_first)
        # gates: S W_gs^T + (C W_gm^T + b), the cache term once per batch
        sig = torch.mm(S2, w_gs.t()).view(B, T, 2 * d)
        sig.add_(torch.addmm(b_g, mem[0], w_gm.t())).sigmoid_()
        g_reset, g_update = sig[..., :d], sig[..., d:]
        z = torch.addmm(b_c, (g_reset * mem).view(B * T, d), w_cm.t())
        z = z.addmm_(S2, w_cs.t()).view(B, T, d)
        if ln_w is not None:  # released: C~ = LN(GELU(z))
            act = F.gelu(z)
            cand, mean, rstd = torch.native_layer_norm(
                act, (d, ), ln_w, ln_b, eps)
        else:  # paper: C~ = z
            act = mean = rstd = None
            cand = z
        diff = cand - mem
        new = torch.addcmul(mem, g_update, diff)
        ctx.save_for_backward(S, mem, sig, z, act, mean, rstd, diff, w_g,
                              w_c, ln_w, ln_b)
        ctx.cache_first = cache_first
        return new

    @staticmethod
    def backward(ctx, grad):
        (S, mem, sig, z, act, mean, rstd, diff, w_g, w_c, ln_w,
         ln_b) = ctx.saved_tensors
        B, T, d = S.shape
        w_gs = _columns(w_g, d, ctx.cache_first)[0]
        w_cs, w_cm = _columns(w_c, d, ctx.cache_first)
        S2 = S.reshape(B * T, d)
        g_reset, g_update = sig[..., :d], sig[..., d:]
        g_gates = torch.empty_like(sig)
        torch.mul(grad, diff, out=g_gates[..., d:])
        g_z = grad * g_update
        g_ln_w = g_ln_b = None
        if ln_w is not None:
            g_act, g_ln_w, g_ln_b = torch.ops.aten.native_layer_norm_backward(
                g_z, act, (d, ), mean, rstd, ln_w, ln_b,
                [True, ln_w.requires_grad, ln_b.requires_grad])
            g_z = torch.ops.aten.gelu_backward(g_act, z)
        g_z2 = g_z.view(B * T, d)
        g_w_g, g_w_c = torch.empty_like(w_g), torch.empty_like(w_c)
        g_w_gs, g_w_gm = _columns(g_w_g, d, ctx.cache_first)
        g_w_cs, g_w_cm = _columns(g_w_c, d, ctx.cache_first)
        torch.mm(g_z2.t(), (g_reset * mem).view(B * T, d), out=g_w_cm)
        torch.mm(g_z2.t(), S2, out=g_w_cs)
        g_b_c = g_z2.sum(0)
        torch.mul(torch.mm(g_z2, w_cm).view(B, T, d), mem,
                  out=g_gates[..., :d])
        g_gates = torch.ops.aten.sigmoid_backward(g_gates, sig)
        g_gates2 = g_gates.view(B * T, 2 * d)
        torch.mm(g_gates2.t(), S2, out=g_w_gs)
        g_gates_t = g_gates.sum(0)  # (T, 2d): the cache term is shared
        torch.mm(g_gates_t.t(), mem[0], out=g_w_gm)
        g_b_g = g_gates_t.sum(0)
        g_S = None
        if ctx.needs_input_grad[0]:
            g_S = torch.mm(g_gates2, w_gs).addmm_(g_z2, w_cs).view(B, T, d)
        return (g_S, None, g_w_g, g_b_g, g_w_c, g_b_c, g_ln_w, g_ln_b, None,
                None)


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


# ---------------------------------------------------------------------------
# pair_conv: the released positional conv (2 channels per group) on tokens
# ---------------------------------------------------------------------------
def pair_conv_fits(conv: nn.Conv2d) -> bool:
    """Groups of exactly 2 input and 2 output channels (cache ratio 0.5)."""
    return conv.in_channels == conv.out_channels == 2 * conv.groups


def pair_conv(conv: nn.Conv2d, tokens: torch.Tensor,
              hw_shape: Tuple[int, int]) -> torch.Tensor:
    """``conv`` over tokens (B, h*w, C) on their grid; returns tokens
    (B, h'*w', C), as ``conv(grid).flatten(2).transpose(1, 2)``."""
    return _PairConvTokens.apply(tokens, conv.weight, conv.bias,
                                 tuple(hw_shape), conv.stride, conv.padding,
                                 conv.dilation)


def _pair_rows(C: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Output channels o of a 2-channel-group conv and o % 2, the position
    of o's own input channel within its group."""
    rows = torch.arange(C, device=device)
    return rows, rows % 2


class _PairConvTokens(torch.autograd.Function):
    """A conv whose groups hold 2 input and 2 output channels, as two
    depthwise convs over the same tokens: ``own`` (kernel weight[o, o % 2])
    and ``cross`` (channel c with kernel weight[c ^ 1, c % 2], whose result
    belongs to output c ^ 1). oneDNN's CPU kernels for 2-channel groups are
    slow, its depthwise ones fast; the tokens are read as a channels-last
    view without copies, and the pair swap is folded into the add (forward)
    and done once on the gradient (backward).
    """

    @staticmethod
    def forward(ctx, tokens, weight, bias, hw_shape, stride, padding,
                dilation):
        B, _, C = tokens.shape
        grid = tokens.transpose(1, 2).reshape(B, C, *hw_shape)
        rows, own = _pair_rows(C, weight.device)
        w_own = weight[rows, own].unsqueeze(1)
        w_cross = weight[rows ^ 1, own].unsqueeze(1)
        kw = dict(stride=stride, padding=padding, dilation=dilation,
                  groups=C)
        out = F.conv2d(grid, w_own, bias, **kw)
        ctx.out_hw = out.shape[2:]
        out = out.flatten(2).transpose(1, 2)
        cross = F.conv2d(grid, w_cross, None, **kw).flatten(2).transpose(1, 2)
        pairs, cross = out.unflatten(-1, (-1, 2)), cross.unflatten(-1, (-1, 2))
        pairs[..., 0].add_(cross[..., 1])
        pairs[..., 1].add_(cross[..., 0])
        ctx.save_for_backward(grid, w_own, w_cross)
        ctx.conv_args = (stride, padding, dilation, C)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        grid, w_own, w_cross = ctx.saved_tensors
        stride, padding, dilation, C = ctx.conv_args
        B = grid.shape[0]
        swapped = torch.stack((grad[..., 1::2], grad[..., 0::2]), -1)

        def to_grid(t):  # tokens (B, L, C) -> channels-last (B, C, h, w)
            return t.reshape(B, -1, C).transpose(1, 2).reshape(
                B, C, *ctx.out_hw)

        need_in = ctx.needs_input_grad[0]
        mask = [need_in, ctx.needs_input_grad[1],
                ctx.has_bias and ctx.needs_input_grad[2]]
        bwd = torch.ops.aten.convolution_backward
        args = ([C] if ctx.has_bias else None, list(stride), list(padding),
                list(dilation), False, [0, 0], C)
        g_in, g_own, g_bias = bwd(to_grid(grad), grid, w_own, *args, mask)
        g_in2, g_cross, _ = bwd(to_grid(swapped), grid, w_cross, *args,
                                [need_in, mask[1], False])
        g_tokens = g_weight = None
        if need_in:
            g_tokens = g_in.add_(g_in2).flatten(2).transpose(1, 2)
        if mask[1]:
            rows, own = _pair_rows(C, grid.device)
            g_weight = g_own.new_zeros(C, 2, *g_own.shape[2:])
            g_weight[rows, own] = g_own[:, 0]
            g_weight[rows ^ 1, own] = g_cross[:, 0]
        return g_tokens, g_weight, g_bias, None, None, None, None
