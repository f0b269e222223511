"""GRC attention: self-attention mixed with attention over a gated recurrent
cache (Cached Transformers, Zhang et al., AAAI 2024).

Two modules, one idea each:

- :class:`GatedRecurrentCache` holds the cache of one layer and updates it from
  a summary of the current tokens (GRU-like gates).
- :class:`GRCAttention` attends from the tokens to the updated cache and mixes
  that with the host layer's own self-attention output, per head.

Neither knows which backbone it sits in: a host attention computes its usual
output ``o_self`` and hands ``(x, o_self, hw_shape)`` to ``GRCAttention``.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from mmcached.registry import MODELS

MODES = ('released', 'paper')


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and \
        dist.get_world_size() > 1


def _in_backward() -> bool:
    """True while autograd runs a backward pass (e.g. a checkpoint re-run)."""
    task_id = getattr(torch._C, '_current_graph_task_id', None)
    return task_id is not None and task_id() != -1


def resize_tokens(x: torch.Tensor, length: int) -> torch.Tensor:
    """Nearest-resize tokens (B, N, C) -> (B, length, C), as the released
    module does; a no-op when N == length."""
    if x.shape[1] == length:
        return x
    return F.interpolate(
        x.transpose(1, 2), size=length, mode='nearest').transpose(1, 2)


def _columns(weight: torch.Tensor, d: int,
             cache_first: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Columns of a cache weight (*, 2d) acting on (summary, cache): its input
    is [C; s] when ``cache_first`` (released) and [s; C] otherwise (paper)."""
    if cache_first:
        return weight[:, d:], weight[:, :d]
    return weight[:, :d], weight[:, d:]


def _pair_rows(C: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Output channels o of a 2-channel-group conv and o % 2, the position
    of o's own input channel within its group."""
    rows = torch.arange(C, device=device)
    return rows, rows % 2


class _PairConvTokens(torch.autograd.Function):
    """A conv whose groups hold 2 input and 2 output channels, over tokens
    (B, h*w, C) on their grid; returns tokens (B, h*w, C).

    Output channel o reads its own channel o and its pair mate o ^ 1, so the
    conv is two depthwise convs over the same tokens: ``own`` (kernel
    weight[o, o % 2]) and ``cross`` (channel c with kernel
    weight[c ^ 1, c % 2]), whose result for channel c belongs to output
    c ^ 1. oneDNN's CPU kernels for 2-channel groups are slow, its depthwise
    ones fast, the tokens are read as a channels-last view without copies,
    and the pair swap is folded into the add (forward) and done once on the
    gradient (backward). Same sums as the grouped conv, up to rounding.
    """

    @staticmethod
    def forward(ctx, tokens, weight, bias, hw_shape, stride, padding,
                dilation):
        B, _, C = tokens.shape
        grid = tokens.transpose(1, 2).reshape(B, C, *hw_shape)
        w_own, w_cross = _PairConvTokens.split(weight)
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
    def split(weight):
        """Depthwise kernels (C, 1, kh, kw): ``own`` (output o reads o) and
        ``cross`` (channel c read by output c ^ 1)."""
        rows, own = _pair_rows(weight.shape[0], weight.device)
        return weight[rows, own].unsqueeze(1), \
            weight[rows ^ 1, own].unsqueeze(1)

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


def _pair_conv_tokens(conv: nn.Conv2d, tokens: torch.Tensor,
                      hw_shape: Tuple[int, int]) -> torch.Tensor:
    """``conv`` (2 channels per group) over tokens (B, h*w, C) on their
    grid; returns tokens (B, h'*w', C). See :class:`_PairConvTokens`."""
    return _PairConvTokens.apply(tokens, conv.weight, conv.bias,
                                 tuple(hw_shape), conv.stride, conv.padding,
                                 conv.dilation)


def _per_head_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of a * b per head, in fp32; a, b: (B, N, H, c) -> (H, ).

    One head in fp32 and contiguous is a BLAS dot: one read of each tensor
    and no product tensor."""
    if a.shape[2] == 1 and a.dtype == b.dtype == torch.float32 and \
            a.is_contiguous() and b.is_contiguous():
        return torch.dot(a.view(-1), b.view(-1)).view(1)
    return (a * b).sum((0, 1, 3), dtype=torch.float32)


class _HeadMix(torch.autograd.Function):
    """out^h = (1 - a_h) * o_self^h + a_h * [o_mem^h, 0] (+ extra).

    o_self: (B, N, H, D/H); o_mem: (B, N, H, d) with d <= D/H, the missing
    channels being the released code's zero padding; alpha: (H, ); extra:
    optional term added to the output (e.g. the positional conv), any shape
    with B * N * D elements. The same as ``lerp`` against the padded o_mem
    plus an add, in two passes instead of about eight (pad, lerp and add,
    forward and backward), which on CPU was the costliest part of the mix.
    """

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


class _CacheUpdate(torch.autograd.Function):
    """The cache update C_t = C + g_u * (C~ - C) in one autograd node.

    summary S: (B, T, d); mem C: (1, T, d), a copy of the buffer (no grad);
    w_g (2d, 2d) / w_c (d, 2d): the gate and candidate weights, whose columns
    act on [C; S] (``mem_first``, released) or [S; C] (paper); ln_w / ln_b:
    the released candidate's LayerNorm, or None (paper). Same math as
    :meth:`GatedRecurrentCache._update`, but fewer passes over (B, T, d)
    tensors, which is what this update costs on CPU: the backward writes
    both gates' gradients into one buffer (no concat) and each weight's
    gradient by column block (no zero-filled slice gradients), sums the two
    gradients of S inside one GEMM, works in place where it can and computes
    no gradient for C.
    """

    @staticmethod
    def forward(ctx, S, mem, w_g, b_g, w_c, b_c, ln_w, ln_b, eps,
                mem_first):
        B, T, d = S.shape
        S2 = S.reshape(B * T, d)
        w_gs, w_gm = _columns(w_g, d, mem_first)
        w_cs, w_cm = _columns(w_c, d, mem_first)
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
        ctx.mem_first = mem_first
        return new

    @staticmethod
    def backward(ctx, grad):
        (S, mem, sig, z, act, mean, rstd, diff, w_g, w_c, ln_w,
         ln_b) = ctx.saved_tensors
        B, T, d = S.shape
        w_gs = _columns(w_g, d, ctx.mem_first)[0]
        w_cs, w_cm = _columns(w_c, d, ctx.mem_first)
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
        # Weight gradients are written into full-size buffers by column
        # block, so no zero-filled slice gradients are summed afterwards.
        g_w_g, g_w_c = torch.empty_like(w_g), torch.empty_like(w_c)
        g_w_gs, g_w_gm = _columns(g_w_g, d, ctx.mem_first)
        g_w_cs, g_w_cm = _columns(g_w_c, d, ctx.mem_first)
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


@MODELS.register_module()
class GatedRecurrentCache(BaseModule):
    """A differentiable cache of ``cache_len`` tokens with ``cache_dims``
    channels, updated by gates from a summary of the current tokens.

    The cache is a persistent buffer ``memory`` of shape (1, T_m, D_m), created
    here (not at the first forward), so it is in every state_dict. In training
    each forward writes the batch mean of the updated cache back, without
    gradient across steps; under DDP the mean is all-reduced so every rank
    keeps the same cache, built from all ranks' samples. In eval the buffer is
    frozen and outputs do not depend on batch mates.

    Equations (s: summary (B, T_m, D_m), C: cache):

    - ``released``: g_r, g_u = sigmoid(W_r [C; s]), sigmoid(W_u [C; s]);
      C~ = LN(GELU(W_c [g_r * C; s])).
    - ``paper``: g_r, g_u = sigmoid(W_r [s; C]), sigmoid(W_u [s; C]);
      C~ = W_c [s; g_r * C].

    Both: C_t = (1 - g_u) * C + g_u * C~, returned per sample (B, T_m, D_m).

    Args:
        cache_dims (int): Channels D_m of the cache.
        cache_len (int): Tokens T_m in the cache. Must be >= 1.
        mode (str): ``'released'`` (default) or ``'paper'``.
        sync (bool): All-reduce the cache update across ranks. Default: True.
        norm_cfg (dict): Norm of the released candidate. Default: LN.
    """

    #: Use the one-node update (:class:`_CacheUpdate`) where it applies;
    #: False runs the same math as plain ops (tests compare the two).
    fused = True

    def __init__(self,
                 cache_dims: int,
                 cache_len: int,
                 mode: str = 'released',
                 sync: bool = True,
                 norm_cfg: dict = dict(type='LN'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if mode not in MODES:
            raise ValueError(f'GRC mode must be one of {MODES}, got {mode!r}')
        if int(cache_len) < 1:
            raise ValueError(f'cache_len must be >= 1, got {cache_len}')
        if int(cache_dims) < 1:
            raise ValueError(f'cache_dims must be >= 1, got {cache_dims}')
        self.cache_dims = int(cache_dims)
        self.cache_len = int(cache_len)
        self.mode = mode
        self.sync = sync
        d = self.cache_dims
        # W_r and W_u read the same input: one matmul for both gates.
        self.gates = nn.Linear(2 * d, 2 * d)
        self.candidate = nn.Linear(2 * d, d)
        self.candidate_norm = build_norm_layer(norm_cfg, d)[1] \
            if mode == 'released' else nn.Identity()
        norm = self.candidate_norm
        # what _CacheUpdate computes in place of the candidate norm
        self._plain_norm = isinstance(norm, nn.Identity) or (
            type(norm) is nn.LayerNorm and norm.elementwise_affine
            and norm.bias is not None and len(norm.normalized_shape) == 1)
        self.register_buffer('memory', torch.zeros(1, self.cache_len, d))
        self._pre_update = None  # the cache before the last training update

    def reset(self) -> None:
        """Empty the cache (zeros), e.g. before fine-tuning on a new task."""
        self.memory.zero_()

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        """Update the cache from ``summary`` (B, T_m, D_m); return C_t."""
        B, T, d = summary.shape
        if T != self.cache_len or d != self.cache_dims:
            raise ValueError(
                f'summary must be (B, {self.cache_len}, {self.cache_dims}), '
                f'got {tuple(summary.shape)}')
        recompute = self.training and _in_backward()
        if recompute and self._pre_update is not None:
            # Activation checkpointing re-runs this forward inside backward:
            # it must see the cache the first run saw, and not update it again.
            mem = self._pre_update.to(summary.dtype)
        else:
            # A copy: autograd saves it, and _write updates the buffer in
            # place afterwards (in place keeps DDP's references valid).
            mem = self.memory.to(summary.dtype, copy=True)
        if self._fusable(summary):
            new = self._fused_update(summary, mem)
        else:
            new = self._update(summary, mem)
        if self.training and not recompute:
            self._pre_update = mem
            self._write(new)
        return new

    def _update(self, summary: torch.Tensor,
                mem: torch.Tensor) -> torch.Tensor:
        """The update as plain ops: C_t (B, T_m, D_m)."""
        # The cache is shared by the batch: its half of the gate matmul is
        # computed once, not B times as a concatenated input would.
        d, cache_first = self.cache_dims, self.mode == 'released'
        w_sum, w_mem = _columns(self.gates.weight, d, cache_first)
        gates = F.linear(summary, w_sum) + F.linear(mem, w_mem, self.gates.bias)
        g_reset, g_update = torch.sigmoid(gates).chunk(2, dim=-1)
        reset_mem = g_reset * mem
        w_sum, w_mem = _columns(self.candidate.weight, d, cache_first)
        cand = F.linear(reset_mem, w_mem, self.candidate.bias) + \
            F.linear(summary, w_sum)
        if self.mode == 'released':
            cand = self.candidate_norm(F.gelu(cand))
        return mem + g_update * (cand.to(mem.dtype) - mem)

    def _fusable(self, summary: torch.Tensor) -> bool:
        """Whether :class:`_CacheUpdate` applies: a forward with grad
        enabled, not traced, in one floating dtype (the cache copy is made
        in the summary's), without autocast (which casts per op), with a
        plain LayerNorm as the released candidate norm."""
        # Tracing (FLOP counting, export) must see the plain ops.
        if not (self.fused and self._plain_norm and torch.is_grad_enabled()) \
                or torch.jit.is_tracing() \
                or torch.is_autocast_enabled(summary.device.type):
            return False
        return all(p.dtype == summary.dtype for p in self.parameters())

    def _fused_update(self, summary: torch.Tensor,
                      mem: torch.Tensor) -> torch.Tensor:
        norm = self.candidate_norm
        ln_w, ln_b, eps = (norm.weight, norm.bias, norm.eps) \
            if self.mode == 'released' else (None, None, 0.)
        return _CacheUpdate.apply(summary, mem, self.gates.weight,
                                  self.gates.bias, self.candidate.weight,
                                  self.candidate.bias, ln_w, ln_b, eps,
                                  self.mode == 'released')

    @torch.no_grad()
    def _write(self, new: torch.Tensor) -> None:
        mean = new.detach().float().mean(dim=0, keepdim=True)
        if self.sync and _is_distributed():
            # DDP's buffer broadcast would keep rank 0's batch only.
            dist.all_reduce(mean)
            mean /= dist.get_world_size()
        self.memory.copy_(mean)

    def extra_repr(self) -> str:
        return (f'cache_len={self.cache_len}, cache_dims={self.cache_dims}, '
                f'mode={self.mode!r}, sync={self.sync}')


@MODELS.register_module()
class GRCAttention(BaseModule):
    """Cache attention and the per-head mix with the host's self-attention.

    For tokens x (B, N, D) and the host layer's self-attention output o_self
    (B, N, D, after its output projection, before dropout / residual):

    1. summary s: first D_m channels of o_self (``released``) or of x
       (``paper``), nearest-resized to T_m tokens;
    2. C_t = cache(s) (see :class:`GatedRecurrentCache`);
    3. o_mem = MHA(q=x[..., :D_m], k=v=C_t), H heads of D_m / H channels, own
       q / kv / out projections; with ``sr_ratio > 1`` the cache, laid out on
       its (h, w) grid, is spatially reduced first (as PVT's keys are);
    4. per head h: out^h = a_h * o_mem^h + (1 - a_h) * o_self^h with
       a_h = sigmoid(lam_h). ``released``: o_mem^h (D_m / H channels) is
       zero-padded to D / H. ``paper``: o_mem is projected back to D;
    5. ``released`` (``pos_conv=True``): plus a 3x3 conv (D -> D, groups D_m)
       of x over its (H, W) patch grid; extra tokens (class token) get zero.

    Args:
        embed_dims (int): D, channels of the host layer.
        num_heads (int): H, heads of the host layer (shared by the cache).
        cache_len (int | tuple[int, int]): T_m, or its (h, w) grid. A grid is
            required for ``sr_ratio > 1``. Usually the token count at the
            pretraining resolution.
        cache_ratio (float): r in (0, 1]; D_m = int(r * D). Default: 0.5.
        mode (str): ``'released'`` (default: the authors' released module,
            the one the paper's numbers come from) or ``'paper'`` (the
            paper's equations).
        sr_ratio (int): Spatial reduction of the cache before attention.
        qkv_bias (bool): Bias of the cache attention's q and kv. Default: True.
        qk_scale (float, optional): Default: head_dim ** -0.5.
        attn_drop (float): Dropout on the cache attention weights.
        proj_drop (float): Dropout after the cache attention's projection.
        pos_conv (bool, optional): The positional conv; default: on in
            ``released`` mode, off in ``paper`` mode.
        num_extra_tokens (int): Leading tokens (class token) that are not on
            the patch grid. Default: 0.
        lam_init (float, optional): Initial lam; default -1 (released) or 0
            (paper).
        sync_cache (bool): All-reduce cache updates under DDP. Default: True.
        norm_cfg (dict): Norm for the released candidate and the sr branch.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 cache_len: Union[int, Sequence[int]],
                 cache_ratio: float = 0.5,
                 mode: str = 'released',
                 sr_ratio: int = 1,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 pos_conv: Optional[bool] = None,
                 num_extra_tokens: int = 0,
                 lam_init: Optional[float] = None,
                 sync_cache: bool = True,
                 norm_cfg: dict = dict(type='LN'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if mode not in MODES:
            raise ValueError(f'GRC mode must be one of {MODES}, got {mode!r}')
        if not 0 < cache_ratio <= 1:
            raise ValueError(
                f'cache_ratio must be in (0, 1], got {cache_ratio}')
        cache_dims = int(embed_dims * cache_ratio)
        if cache_dims < num_heads or cache_dims % num_heads:
            raise ValueError(
                f'cache channels int({cache_ratio} * {embed_dims}) = '
                f'{cache_dims} must be a positive multiple of num_heads='
                f'{num_heads}; choose another cache_ratio')
        if isinstance(cache_len, int):
            grid = None
            length = cache_len
        else:
            grid = tuple(int(v) for v in cache_len)
            if len(grid) != 2:
                raise ValueError(f'cache_len grid must be (h, w), got {cache_len}')
            length = grid[0] * grid[1]
        if length < 1:
            raise ValueError(f'cache_len must be >= 1, got {cache_len}')
        if sr_ratio > 1 and grid is None:
            raise ValueError('sr_ratio > 1 needs cache_len as an (h, w) grid')

        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.cache_dims = cache_dims
        self.cache_grid = grid
        self.mode = mode
        self.sr_ratio = sr_ratio
        self.num_extra_tokens = num_extra_tokens
        self.attn_drop = attn_drop
        head_dims = cache_dims // num_heads
        self.scale = qk_scale or head_dims**-0.5

        self.cache = GatedRecurrentCache(
            cache_dims, length, mode=mode, sync=sync_cache, norm_cfg=norm_cfg)
        self.mem_q = nn.Linear(cache_dims, cache_dims, bias=qkv_bias)
        self.mem_kv = nn.Linear(cache_dims, 2 * cache_dims, bias=qkv_bias)
        self.mem_proj = nn.Linear(
            cache_dims, cache_dims if mode == 'released' else embed_dims)
        self.mem_proj_drop = nn.Dropout(proj_drop)
        if sr_ratio > 1:
            self.mem_sr = nn.Conv2d(
                cache_dims, cache_dims, kernel_size=sr_ratio, stride=sr_ratio)
            self.mem_norm = build_norm_layer(norm_cfg, cache_dims)[1]
        if lam_init is None:
            lam_init = -1. if mode == 'released' else 0.
        self.lam = nn.Parameter(torch.full((num_heads, ), float(lam_init)))
        if pos_conv is None:
            pos_conv = mode == 'released'
        self.pos_conv = nn.Conv2d(
            embed_dims, embed_dims, 3, padding=1,
            groups=cache_dims) if pos_conv else None

    @property
    def cache_len(self) -> int:
        return self.cache.cache_len

    def init_weights(self):
        super().init_weights()
        if self.init_cfg is None:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def reset_cache(self) -> None:
        self.cache.reset()

    def _cache_kv(self, mem: torch.Tensor) -> torch.Tensor:
        if self.sr_ratio > 1:
            B = mem.shape[0]
            h, w = self.cache_grid
            mem = mem.transpose(1, 2).reshape(B, self.cache_dims, h, w)
            mem = self.mem_sr(mem).flatten(2).transpose(1, 2)
            mem = self.mem_norm(mem)
        return self.mem_kv(mem)

    def forward(self,
                x: torch.Tensor,
                o_self: torch.Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """x, o_self: (B, N, D); hw_shape: (H, W) of the patch tokens, needed
        by the positional conv (N = num_extra_tokens + H * W). Returns the
        mixed output (B, N, D), before the host's dropout and residual."""
        B, N, D = x.shape
        H, dm = self.num_heads, self.cache_dims
        src = o_self if self.mode == 'released' else x
        summary = resize_tokens(src[..., :dm], self.cache_len)
        mem = self.cache(summary)

        q = self.mem_q(x[..., :dm]).view(B, N, H, dm // H).transpose(1, 2)
        kv = self._cache_kv(mem).view(B, -1, 2, H, dm // H).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        # One head, same width in and out (released mode): rows of the
        # attention weights sum to 1, so A (V W^T) + b = (A V) W^T + b and the
        # projection runs on the few cache tokens instead of all N tokens.
        fold = H == 1 and self.mem_proj.out_features == dm
        if fold:
            v = F.linear(v, self.mem_proj.weight)
        o_mem = F.scaled_dot_product_attention(
            q, k, v,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale).transpose(1, 2).flatten(2)
        o_mem = o_mem + self.mem_proj.bias if fold else self.mem_proj(o_mem)
        o_mem = self.mem_proj_drop(o_mem)

        alpha = torch.sigmoid(self.lam).to(o_self.dtype)
        # released: o_mem^h has D_m/H channels, zero-padded to D/H by the mix
        o_mem = o_mem.view(B, N, H, -1).to(o_self.dtype)
        # reshape, not view: hosts may hand over a transposed o_self.
        o_self = o_self.reshape(B, N, H, D // H)
        pos = None
        if self.pos_conv is not None:
            pos = self._pos_term(x, hw_shape).to(o_self.dtype)
        return _HeadMix.apply(o_self, o_mem, alpha, pos).view(B, N, D)

    def _pos_term(self, x: torch.Tensor, hw_shape) -> torch.Tensor:
        B, N, D = x.shape
        n_extra = self.num_extra_tokens
        if hw_shape is None:  # square patch grid, as the released code assumes
            side = math.isqrt(N - n_extra)
            hw_shape = (side, side)
        h, w = hw_shape
        if h * w + n_extra != N:
            raise ValueError(
                f'hw_shape {tuple(hw_shape)} + {n_extra} extra tokens does '
                f'not match {N} tokens')
        conv = self.pos_conv
        patches = x[:, n_extra:] if n_extra else x
        if x.device.type == 'cpu' and conv.in_channels == \
                conv.out_channels == 2 * conv.groups and \
                not torch.is_autocast_enabled('cpu') and \
                not torch.jit.is_tracing():  # cache ratio 0.5 on CPU
            pos = _pair_conv_tokens(conv, patches, (h, w))
        else:
            grid = patches.transpose(1, 2).reshape(B, D, h, w)
            pos = conv(grid).flatten(2).transpose(1, 2)
        if n_extra:
            pos = F.pad(pos, (0, 0, n_extra, 0))
        return pos

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'cache_dims={self.cache_dims}, mode={self.mode!r}, '
                f'sr_ratio={self.sr_ratio}, '
                f'num_extra_tokens={self.num_extra_tokens}')


def reset_caches(module: nn.Module) -> int:
    """Zero every GRC cache inside ``module``; returns how many were reset."""
    n = 0
    for m in module.modules():
        if isinstance(m, GatedRecurrentCache):
            m.reset()
            n += 1
    return n
