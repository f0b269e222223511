"""GRC attention's fused path: the same layer as the plain code of
:mod:`.grc_attention` (which stays the reference), in fewer passes over
memory, through custom autograd nodes. Switched by :mod:`.switch`
(``MMCACHED_FUSED_GRC``, ``set_fused_grc``, ``fused_grc``; default on).

Limits. The layer takes this path only where :func:`applies` says so; in
every other case it runs the plain path, so results there are the plain
ones by construction:

- the switch is on;
- the tensors are on the CPU (the nodes were written and measured for the
  CPU; on CUDA they are untested, and CUDA's kernels differ);
- x, o_self and every parameter are float32 or float64, all the same dtype
  (no float16 / bfloat16, no mixed dtypes), and autocast is off;
- nothing traces, scripts or compiles the layer (FLOP counting traces it
  and must see the plain ops; export and ``torch.compile`` see them too).

Within the path, each part falls back to its plain ops by itself:

- the cache update node needs the released candidate norm to be a plain
  affine ``nn.LayerNorm`` (the default ``norm_cfg``), or paper mode;
- the positional conv is computed as depthwise convs only when its groups
  hold k input and k output channels with k > 1 (cache ratio 1/k) and the
  batch holds more than one image; depthwise already (cache ratio 1), or
  for one image, it stays ``nn.Conv2d`` (oneDNN's depthwise conv on a
  channels-last batch of one measured as slow as the grouped conv, e.g.
  101 ms against 106 ms for 96 channels on 200 x 336 tokens, and two of
  them are needed).

The nodes' backward is not differentiable again (``once_differentiable``,
which says so when asked); the plain path has no double backward on the
CPU either (SDPA's CPU backward has no derivative).

Any ``requires_grad`` combination of inputs and parameters is supported
(a node returns no gradient where none is needed), and so is grad off (the
frozen-cache eval forward runs the same nodes). Activation checkpointing
re-runs the forward inside backward; the nodes are deterministic functions
of their inputs, so the re-run gives the first run's values, and the
cache's own re-run rule (see ``GatedRecurrentCache.forward``) is kept.

The nodes, each float64-gradchecked and compared with the plain ops with
the switch flipped (``tests/test_models/test_layers/test_grc_fused.py``):

- :class:`CacheInputs`: what reads the first D_m channels of x and o_self
  (the summary, the cache query and its projection), with their gradients
  added into the full ones in place;
- :class:`CacheUpdate`: steps 2-4, the gates, candidate and gated update;
- :class:`GroupConvTokens`: the released positional conv (k channels per
  group) as k depthwise convs over the tokens, read in place;
- :class:`HeadMix`: step 6, the per-head mix plus the positional term.

The path is kept as a whole only while it saves at least 10% of the layer's
forward + backward time (``tools/analysis/benchmark_grc.py`` measures fast
against plain, interleaved; docs/grc.md "Speed").
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..tokens import patch_grid, resize_tokens
from .switch import use_fused_grc

_DTYPES = (torch.float32, torch.float64)


def applies(layer: nn.Module, x: torch.Tensor, o_self: torch.Tensor) -> bool:
    """Whether ``layer`` (a GRCAttention) takes the fused path on these
    inputs; see the module docstring."""
    if not use_fused_grc() or torch.jit.is_tracing() or \
            torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    if x.device.type != 'cpu' or x.dtype not in _DTYPES or \
            o_self.dtype != x.dtype or torch.is_autocast_enabled('cpu'):
        return False
    return all(p.dtype == x.dtype for p in layer.parameters())


def forward(layer: nn.Module, x: torch.Tensor, o_self: torch.Tensor,
            hw_shape: Optional[Tuple[int, int]]) -> torch.Tensor:
    """``GRCAttention.forward`` through the nodes; same steps, same
    results (the plain code is the reference)."""
    B, N, D = x.shape
    H, dm = layer.num_heads, layer.cache_dims
    n = layer.num_extra_tokens
    # the layer's inputs as its parts read them, and the cache query
    x, o_self, q, summary = CacheInputs.apply(x, o_self, layer.mem_q.weight,
                                              layer.mem_q.bias, dm,
                                              layer.mode == 'released')
    # 1. summary
    summary = resize_tokens(summary, layer.cache_len)
    # 2-4. the cache, updated per sample (the cache keeps its bookkeeping)
    cache = layer.cache
    mem = cache(
        summary, update=cache_update if cache_update_fits(cache) else None)
    # 5. attention to the cache
    o_mem = _cache_attention(layer, q, mem)
    # 6. mix, plus the positional term
    pos, own = None, False
    if layer.pos_conv is not None:
        if B > 1 and group_conv_fits(layer.pos_conv):
            pos = group_conv_tokens(layer.pos_conv, x[:, n:] if n else x,
                                    patch_grid(N, n, hw_shape))
            own = n == 0  # the mix may write its output into pos
        else:
            pos = layer.positional_term(x, hw_shape)[:, n:]
    alpha = torch.sigmoid(layer.lam)
    out = HeadMix.apply(
        o_self.reshape(B, N, H, D // H), o_mem.view(B, N, H, -1), alpha, pos,
        n, own)
    return out.view(B, N, D)


def _cache_attention(layer: nn.Module, q: torch.Tensor,
                     mem: torch.Tensor) -> torch.Tensor:
    """``GRCAttention.cache_attention`` from the projected query q
    (B, N, D_m) (:class:`CacheInputs`); the same ops after it."""
    B, N, dm = q.shape
    H = layer.num_heads
    if layer.sr_ratio > 1:
        grid = mem.transpose(1, 2).reshape(B, dm, *layer.cache_grid)
        mem = layer.mem_norm(layer.mem_sr(grid).flatten(2).transpose(1, 2))
    q = q.view(B, N, H, -1).transpose(1, 2)
    k, v = layer.mem_kv(mem).view(B, -1, 2, H, dm // H).permute(2, 0, 3, 1, 4)
    proj = layer.mem_proj
    fold = H == 1 and proj.out_features == dm  # see cache_attention
    if fold:
        v = F.linear(v, proj.weight)
    o_mem = F.scaled_dot_product_attention(
        q,
        k,
        v,
        dropout_p=layer.attn_drop if layer.training else 0.,
        scale=layer.scale).transpose(1, 2).flatten(2)
    o_mem = o_mem + proj.bias if fold else proj(o_mem)
    return layer.mem_proj_drop(o_mem)


# ---------------------------------------------------------------------------
# The layer's inputs: what reads the first D_m channels, and the cache query
# ---------------------------------------------------------------------------
class CacheInputs(torch.autograd.Function):
    """x and o_self (B, N, D) passed on, the cache query
    q = x[..., :D_m] W_q^T + b_q (B, N, D_m) and the summary's source
    (released: o_self[..., :D_m]; paper: x[..., :D_m]), a view.

    In the plain ops each slice's gradient is a zero-filled (B, N, D) tensor
    with the slice copied in, then summed with the full gradient. Here the
    backward adds the query's and the summary's gradients into the full
    gradients in place, on their first D_m channels, and the query's input
    gradient is a GEMM that accumulates there directly. The full gradients
    it receives come from the fused path's own nodes (the mix, the
    positional conv), fresh tensors of their own; a non-contiguous one is
    copied first.
    """

    @staticmethod
    def forward(ctx, x, o_self, w_q, b_q, dm, released):
        B, N, D = x.shape
        q = F.linear(x[..., :dm], w_q, b_q)
        summary = (o_self if released else x)[..., :dm]
        ctx.save_for_backward(x, w_q)
        ctx.dm, ctx.released, ctx.has_bias = dm, released, b_q is not None
        return x.view_as(x), o_self.view_as(o_self), q, summary

    @staticmethod
    @once_differentiable
    def backward(ctx, g_x, g_o, g_q, g_s):
        x, w_q = ctx.saved_tensors
        need = ctx.needs_input_grad
        dm = ctx.dm
        B, N, D = x.shape
        g_q2 = g_q.reshape(B * N, dm)
        g_w = g_b = None
        if need[2]:
            g_w = torch.mm(g_q2.t(), x[..., :dm].reshape(B * N, dm))
        if need[3] and ctx.has_bias:
            g_b = g_q2.sum(0)
        if need[0]:
            g_x = g_x.contiguous()
            g_xs = g_x.view(B * N, D)[:, :dm]
            g_xs.addmm_(g_q2, w_q)
            if not ctx.released:
                g_xs.add_(g_s.reshape(B * N, dm))
        else:
            g_x = None
        if need[1]:
            g_o = g_o.contiguous()
            if ctx.released:
                g_o[..., :dm].add_(g_s)
        else:
            g_o = None
        return g_x, g_o, g_w, g_b, None, None


# ---------------------------------------------------------------------------
# Steps 2-4: the cache update
# ---------------------------------------------------------------------------
def cache_update_fits(cache: nn.Module) -> bool:
    """The node computes the released candidate norm as a plain affine
    LayerNorm over the channels, or the paper's identity."""
    norm = cache.candidate_norm
    if cache.mode != 'released':
        return isinstance(norm, nn.Identity)
    return type(norm) is nn.LayerNorm and norm.elementwise_affine and \
        norm.bias is not None and len(norm.normalized_shape) == 1


def cache_update(cache: nn.Module, summary: torch.Tensor,
                 mem: torch.Tensor) -> torch.Tensor:
    """``cache.update(summary, mem)`` as one node."""
    released = cache.mode == 'released'
    norm = cache.candidate_norm
    ln = (norm.weight, norm.bias, norm.eps) if released else (None, None, 0.)
    return CacheUpdate.apply(summary, mem, cache.gates.weight,
                             cache.gates.bias, cache.candidate.weight,
                             cache.candidate.bias, *ln, released)


def _columns(weight: torch.Tensor, d: int, cache_first: bool):
    """(summary columns, cache columns) of a weight on [C; S] (released,
    ``cache_first``) or [S; C] (paper), as GatedRecurrentCache.columns."""
    if cache_first:
        return weight[:, d:], weight[:, :d]
    return weight[:, :d], weight[:, d:]


class CacheUpdate(torch.autograd.Function):
    """C_t = C + g_u * (C~ - C), steps 2-4 in one node.

    S (B, T, d): the summary (may be a strided view); mem (1, T, d): the
    cache, a constant (the buffer's copy); w_g (2d, 2d), b_g, w_c (d, 2d),
    b_c: the gates' and candidate's Linear on [C; S] (``cache_first``,
    released) or [S; C]; ln_w, ln_b, eps: the released candidate's
    LayerNorm after GELU, or None (paper: no GELU, no norm).

    Against the plain ops: the cache's halves of the gates are computed once
    per batch; each gate is a (B, T, d) tensor of its own (no (B, T, 2d)
    tensor split in two); the backward computes the activations' gradients
    in place, writes each weight's gradient by block (no concatenations,
    no zero-filled slice gradients summed), accumulates S's three gradients
    in one output and computes no gradient for the constant cache.
    """

    @staticmethod
    def forward(ctx, S, mem, w_g, b_g, w_c, b_c, ln_w, ln_b, eps, cache_first):
        B, T, d = S.shape
        S2 = S.reshape(B * T, d)
        w_gs, w_gm = _columns(w_g, d, cache_first)
        w_cs, w_cm = _columns(w_c, d, cache_first)
        # the cache's term of both gates, once per batch: (T, 2d)
        cache_term = torch.addmm(b_g, mem[0], w_gm.t())
        # each gate a (B, T, d) tensor of its own (rows :d reset, d: update)
        g_reset = torch.mm(S2, w_gs[:d].t()).view(B, T, d)
        g_reset.add_(cache_term[:, :d]).sigmoid_()
        g_update = torch.mm(S2, w_gs[d:].t()).view(B, T, d)
        g_update.add_(cache_term[:, d:]).sigmoid_()
        reset_mem = (g_reset * mem).view(B * T, d)
        z = torch.addmm(b_c, reset_mem, w_cm.t())
        z = z.addmm_(S2, w_cs.t()).view(B, T, d)
        if ln_w is not None:  # released: C~ = LN(GELU(z))
            act = F.gelu(z)
            cand, mean, rstd = torch.native_layer_norm(act, (d, ), ln_w, ln_b,
                                                       eps)
        else:  # paper: C~ = z
            act = mean = rstd = None
            cand = z
        diff = cand.sub_(mem) if ln_w is not None else cand - mem
        new = torch.addcmul(mem, g_update, diff)
        # reset_mem is kept for backward in released mode only: in paper
        # mode the plain ops save less, and recomputing it keeps the node's
        # saved memory at theirs
        ctx.save_for_backward(S, mem, g_reset, g_update,
                              reset_mem if ln_w is not None else None, z, act,
                              mean, rstd, diff, w_g, w_c, ln_w, ln_b)
        ctx.cache_first = cache_first
        return new

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (S, mem, g_reset, g_update, reset_mem, z, act, mean, rstd, diff, w_g,
         w_c, ln_w, ln_b) = ctx.saved_tensors
        need = ctx.needs_input_grad
        B, T, d = S.shape
        cf = ctx.cache_first
        w_gs = _columns(w_g, d, cf)[0]
        w_cs, w_cm = _columns(w_c, d, cf)
        S2 = S.reshape(B * T, d)
        sig_bwd = torch.ops.aten.sigmoid_backward.grad_input
        # update gate: d new / d g_u = C~ - C
        g_u = torch.mul(grad, diff)
        sig_bwd(g_u, g_update, grad_input=g_u)
        g_z = grad * g_update
        g_ln_w = g_ln_b = None
        if ln_w is not None:
            g_act, g_ln_w, g_ln_b = torch.ops.aten.native_layer_norm_backward(
                g_z, act, (d, ), mean, rstd, ln_w, ln_b,
                [True, need[6], need[7]])
            g_z = torch.ops.aten.gelu_backward.grad_input(
                g_act, z, grad_input=g_act)
        g_z2 = g_z.view(B * T, d)
        # reset gate: d z / d g_r = (W_cm^T g_z) * C
        g_r = torch.mm(g_z2, w_cm).view(B, T, d).mul_(mem)
        sig_bwd(g_r, g_reset, grad_input=g_r)
        g_r2, g_u2 = g_r.view(B * T, d), g_u.view(B * T, d)
        g_w_g = g_b_g = g_w_c = g_b_c = g_S = None
        if need[2] or need[3]:
            # (T, d) each: the cache term is shared by the batch
            g_r_t, g_u_t = g_r.sum(0), g_u.sum(0)
        if need[2]:
            g_w_g = torch.empty_like(w_g)
            g_w_gs, g_w_gm = _columns(g_w_g, d, cf)
            torch.mm(g_r2.t(), S2, out=g_w_gs[:d])
            torch.mm(g_u2.t(), S2, out=g_w_gs[d:])
            torch.mm(g_r_t.t(), mem[0], out=g_w_gm[:d])
            torch.mm(g_u_t.t(), mem[0], out=g_w_gm[d:])
        if need[3]:
            g_b_g = torch.cat((g_r_t.sum(0), g_u_t.sum(0)))
        if need[4]:
            if reset_mem is None:
                reset_mem = (g_reset * mem).view(B * T, d)
            g_w_c = torch.empty_like(w_c)
            g_w_cs, g_w_cm = _columns(g_w_c, d, cf)
            torch.mm(g_z2.t(), reset_mem, out=g_w_cm)
            torch.mm(g_z2.t(), S2, out=g_w_cs)
        if need[5]:
            g_b_c = g_z2.sum(0)
        if need[0]:
            g_S = torch.mm(g_z2, w_cs).addmm_(g_r2, w_gs[:d]).addmm_(
                g_u2, w_gs[d:]).view(B, T, d)
        return (g_S, None, g_w_g, g_b_g, g_w_c, g_b_c, g_ln_w, g_ln_b, None,
                None)


# ---------------------------------------------------------------------------
# The released positional conv: k channels per group, as k depthwise convs
# ---------------------------------------------------------------------------
def group_conv_fits(conv: nn.Conv2d) -> bool:
    """Groups of k > 1 input and k output channels, no transposed conv,
    zero padding."""
    k = conv.in_channels // conv.groups
    return conv.in_channels == conv.out_channels and k > 1 and \
        not conv.transposed and conv.padding_mode == 'zeros' and \
        isinstance(conv.padding, tuple)


def group_conv_tokens(conv: nn.Conv2d, tokens: torch.Tensor,
                      hw_shape: Sequence[int]) -> torch.Tensor:
    """``conv`` over tokens (B, h*w, C) on their (h, w) grid; returns tokens
    (B, h'*w', C), as ``conv(grid).flatten(2).transpose(1, 2)``."""
    return GroupConvTokens.apply(tokens, conv.weight, conv.bias,
                                 tuple(hw_shape), conv.stride, conv.padding,
                                 conv.dilation, conv.groups)


def _shift_rows(C: int, k: int, s: int, device) -> Tuple[torch.Tensor, ...]:
    """For shift s: the output channel that input channel c feeds through
    its depthwise conv, and c's position in its group (the weight column)."""
    c = torch.arange(C, device=device)
    pos = c % k
    return c - pos + (pos - s) % k, pos


class GroupConvTokens(torch.autograd.Function):
    """A conv whose groups hold k input and k output channels, as k
    depthwise convs over the same tokens.

    Output channel o = g k + r reads inputs g k + j, j < k. Shift s pairs
    each input channel c = g k + j with output g k + (j - s) mod k: a
    depthwise conv with, for channel c, the kernel weight[that output, j],
    whose result is added to that output (s = 0: c's own output, with the
    bias). oneDNN's CPU kernels for small groups are slow and its depthwise
    ones fast; the tokens are read as a channels-last grid without copies,
    and the channel shift works on whole token rows (an index_add_ of each
    shifted term in forward, an index_select of the gradient in backward).
    """

    @staticmethod
    def forward(ctx, tokens, weight, bias, hw_shape, stride, padding, dilation,
                groups):
        B, _, C = tokens.shape
        k = C // groups
        grid = tokens.transpose(1, 2).reshape(B, C, *hw_shape)
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=C)
        kernels = []
        out = None
        for s in range(k):
            rows, pos = _shift_rows(C, k, s, weight.device)
            w_s = weight[rows, pos].unsqueeze(1)
            kernels.append(w_s)
            y = F.conv2d(grid, w_s, bias if s == 0 else None, **kw)
            if s == 0:
                ctx.out_hw = y.shape[2:]
                # tokens; not a view for autograd (the mix writes into it)
                out = y.flatten(2).transpose(1, 2)
                out = out.detach() if out.is_contiguous() else \
                    out.contiguous()
                out2d = out.view(-1, C)
                continue
            # channel c's term goes to output rows[c] (one index_add_ over
            # whole token rows; adds with a stride of k channels are slow)
            out2d.index_add_(1, rows,
                             y.flatten(2).transpose(1, 2).reshape(-1, C))
        ctx.save_for_backward(grid, *kernels)
        ctx.conv = (list(stride), list(padding), list(dilation), C, k)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        grid, *kernels = ctx.saved_tensors
        stride, padding, dilation, C, k = ctx.conv
        B = grid.shape[0]
        need_in, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        grad = grad.reshape(B, -1, C)

        def to_grid(t):  # tokens (B, L, C) -> channels-last (B, C, h, w)
            return t.transpose(1, 2).reshape(B, C, *ctx.out_hw)

        bwd = torch.ops.aten.convolution_backward
        args = ([C] if ctx.has_bias else None, stride, padding, dilation,
                False, [0, 0], C)
        g_tokens = g_weight = g_bias = None
        if need_w:
            g_weight = kernels[0].new_empty(C, k, *kernels[0].shape[2:])
        for s, w_s in enumerate(kernels):
            rows, pos = _shift_rows(C, k, s, grid.device)
            g_s = grad.reshape(-1, C)
            if s:  # the gradient of depthwise channel c: its output's
                g_s = torch.index_select(g_s, 1, rows)
            g_in, g_w, g_b = bwd(
                to_grid(g_s.reshape(B, -1, C).contiguous()), grid, w_s, *args,
                [need_in, need_w, need_b and s == 0])
            if need_in:
                g_tokens = g_in if g_tokens is None else g_tokens.add_(g_in)
            if need_w:
                g_weight[rows, pos] = g_w[:, 0]
            if s == 0:
                g_bias = g_b
        if need_in:
            g_tokens = g_tokens.flatten(2).transpose(1, 2)
        return g_tokens, g_weight, g_bias, None, None, None, None, None


# ---------------------------------------------------------------------------
# Step 6: the per-head mix, plus the positional term
# ---------------------------------------------------------------------------
def _per_head_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of a * b per head; a, b: (B, N, H, c) -> (H, ). One contiguous
    head is a BLAS dot (no product tensor); more heads sum the product over
    the tokens first (column sums of a (tokens, H * c) matrix)."""
    B, N, H, c = a.shape
    if H == 1 and a.is_contiguous() and b.is_contiguous():
        return torch.dot(a.view(-1), b.view(-1)).view(1)
    prod = a.reshape(B * N, H * c) * b.reshape(B * N, H * c)
    return prod.sum(0).view(H, c).sum(1)


class HeadMix(torch.autograd.Function):
    """out^h = a_h [o_mem^h, 0] + (1 - a_h) o_self^h, plus ``pos`` on the
    patch tokens, in one node.

    o_self (B, N, H, c), o_mem (B, N, H, c' <= c) (zero-padded to c per
    head), alpha (H, ), pos (B, N - n_extra, H * c) or None. Two passes in
    forward and three in backward instead of the plain ops' pad, products,
    sums and adds; the positional term's gradient is the output's gradient
    itself (a view), not a copy. The per-head weights are spread to one per
    channel, so that the passes run over (tokens, channels) rows (a weight
    per head broadcast over (tokens, 1, c) makes short inner loops).
    """

    @staticmethod
    def forward(ctx, o_self, o_mem, alpha, pos, n_extra, own_pos=False):
        B, N, H, c = o_self.shape
        cm = o_mem.shape[-1]
        keep = (1 - alpha).repeat_interleave(c)  # (H * c, )
        take = alpha.repeat_interleave(cm).view(H, cm)
        o2 = o_self.reshape(B * N, H * c)
        if own_pos:  # pos: (B, N, D), a fresh tensor nobody else reads
            ctx.mark_dirty(pos)
            out = pos.view(B * N, H * c).addcmul_(o2, keep)
        elif pos is not None and n_extra == 0:
            out = torch.addcmul(pos.reshape(B * N, H * c), o2, keep)
        else:
            out = o2 * keep
            if pos is not None:
                out.view(B, N, H * c)[:, n_extra:] += pos
        if cm == c:
            out.addcmul_(o_mem.reshape(B * N, H * c), take.view(-1))
        else:
            out.view(B * N, H,
                     c)[..., :cm].addcmul_(o_mem.reshape(B * N, H, cm), take)
        ctx.save_for_backward(o_self, o_mem, alpha)
        ctx.n_extra = n_extra
        ctx.has_pos = pos is not None
        return pos if own_pos else out.view(B, N, H, c)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        o_self, o_mem, alpha = ctx.saved_tensors
        need = ctx.needs_input_grad
        B, N, H, c = o_self.shape
        cm = o_mem.shape[-1]
        grad = grad.reshape(B, N, H, c)  # (B, N, D) when pos was written
        g_mem = grad[..., :cm]
        g_self = g_o_mem = g_alpha = g_pos = None
        copied = (need[1] or need[2]) and not g_mem.is_contiguous()
        if copied:
            g_mem = g_mem.contiguous()
        if need[2]:  # d out / d a = [o_mem, 0] - o_self, per head
            g_alpha = _per_head_dot(g_mem, o_mem) - _per_head_dot(grad, o_self)
        if need[0]:
            keep = (1 - alpha).repeat_interleave(c)
            g_self = (grad.reshape(B * N, H * c) * keep).view(B, N, H, c)
        if need[1]:
            take = alpha.repeat_interleave(cm)
            g2 = g_mem.view(B * N, H * cm) if g_mem.is_contiguous() else \
                g_mem.reshape(B * N, H * cm)
            g_o_mem = (g2.mul_(take) if copied else g2 * take).view(
                B, N, H, cm)
        if ctx.has_pos and need[3]:
            g_pos = grad.reshape(B, N, H * c)[:, ctx.n_extra:]
        return g_self, g_o_mem, g_alpha, g_pos, None, None
