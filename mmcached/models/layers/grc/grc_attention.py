"""GRC attention: self-attention mixed with attention over a gated recurrent
cache (Cached Transformers, Zhang et al., AAAI 2024).

For the tokens x (B, N, D) of one attention layer and the host's own
self-attention output o_self (B, N, D), one training step of a layer with a
cache C (1, T_m, D_m), D_m = r * D:

1. summary:   s = the first D_m channels of o_self (``released``) or of x
   (``paper``), nearest-resized to T_m tokens;
2. gates:     g_r, g_u = sigmoid(W_r [s; C]), sigmoid(W_u [s; C]);
3. candidate: C~ = W_c [s; g_r * C] (``released``: LN(GELU(.)), and the
   cache's columns first);
4. update:    C_t = (1 - g_u) * C + g_u * C~, per sample; the buffer keeps
   the batch mean (no gradient across steps);
5. cache attention: o_mem = MHA(q = x[..., :D_m], k = v = C_t);
6. mix, per head h: out^h = a_h * o_mem^h + (1 - a_h) * o_self^h with
   a_h = sigmoid(lam_h) (``released``: o_mem^h zero-padded to D / H, plus a
   3x3 positional conv of x).

Two modules, one idea each: :class:`GatedRecurrentCache` (steps 2-4) and
:class:`GRCAttention` (steps 1, 5, 6), a mixing cache layer (see
:mod:`..cache_layer`). The code below is the plain math, the reference. The
same steps through custom autograd nodes, which save more than 10% of the
layer's forward + backward time on CPU taken together (docs/grc.md,
"Speed"), are :mod:`.fused`, behind one switch (:mod:`.switch`,
``MMCACHED_FUSED_GRC``); ``GRCAttention.forward`` picks the path.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmcached.registry import MODELS
from .. import cache_sync
from ..cache_layer import BaseCacheLayer
from ..tokens import patch_grid, resize_tokens
from . import fused, maps

MODES = ('released', 'paper')


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f'GRC mode must be one of {MODES}, got {mode!r}')


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and \
        dist.get_world_size() > 1


def _in_backward() -> bool:
    """True while autograd runs a backward pass (e.g. a checkpoint re-run).

    Under ``torch.compile`` the forward is traced once, outside backward,
    and a checkpointed region is recomputed from the traced graph, never by
    re-running this code: False, with no graph break (dynamo cannot trace
    the graph task id)."""
    if torch.compiler.is_compiling():
        return False
    task_id = getattr(torch._C, '_current_graph_task_id', None)
    return task_id is not None and task_id() != -1


@MODELS.register_module()
class GatedRecurrentCache(BaseModule):
    """A differentiable cache of ``cache_len`` tokens with ``cache_dims``
    channels, updated by gates from a summary of the current tokens.

    The cache is a persistent buffer ``memory`` (1, T_m, D_m), created here,
    so it is in every state_dict. In training each forward writes the batch
    mean of the updated cache back, without gradient across steps; under DDP
    that mean is averaged across ranks, with the other caches' updates of
    the step in one collective (:mod:`.cache_sync`), so every rank keeps the
    same cache, built from all ranks' samples. In eval the buffer is frozen
    and outputs do not depend on batch mates.

    Args:
        cache_dims (int): Channels D_m of the cache.
        cache_len (int): Tokens T_m of the cache.
        mode (str): ``'released'`` (default) or ``'paper'``: see the module
            docstring for how they differ.
        sync_cache (bool): Average the cache update across ranks.
            Default: True.
        norm_cfg (dict): Norm of the released candidate. Default: LN.
    """

    def __init__(self,
                 cache_dims: int,
                 cache_len: int,
                 mode: str = 'released',
                 sync_cache: bool = True,
                 norm_cfg: dict = dict(type='LN'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        _check_mode(mode)
        if int(cache_len) < 1 or int(cache_dims) < 1:
            raise ValueError(f'cache_len and cache_dims must be >= 1, got '
                             f'{cache_len} and {cache_dims}')
        self.cache_dims = d = int(cache_dims)
        self.cache_len = int(cache_len)
        self.mode = mode
        self.sync_cache = sync_cache
        # W_r and W_u read the same input: one Linear for both gates.
        self.gates = nn.Linear(2 * d, 2 * d)
        self.candidate = nn.Linear(2 * d, d)
        self.candidate_norm = build_norm_layer(norm_cfg, d)[1] \
            if mode == 'released' else nn.Identity()
        self.register_buffer('memory', torch.zeros(1, self.cache_len, d))
        self._pre_update = None  # the cache before the last training update
        # A pending cross-rank update lands before the buffer is saved or
        # replaced (see cache_sync).
        self.register_state_dict_pre_hook(self._land_update)
        self._register_load_state_dict_pre_hook(self._land_update)

    def _land_update(self, *args, **kwargs) -> None:
        cache_sync.before_read(self.memory)

    def reset_cache(self) -> None:
        """Empty the cache (zeros)."""
        self._land_update()
        self.memory.zero_()

    def columns(self, weight: torch.Tensor):
        """(summary columns, cache columns) of a weight acting on the
        concatenation: [C; s] in ``released`` mode, [s; C] in ``paper``."""
        d = self.cache_dims
        if self.mode == 'released':
            return weight[:, d:], weight[:, :d]
        return weight[:, :d], weight[:, d:]

    def update(self, s: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """Steps 2-4: the updated cache C_t (B, T_m, D_m) from the summary
        s (B, T_m, D_m) and the cache mem (1, T_m, D_m)."""
        # A weight on the concatenation [s; C] is a sum of two matmuls; the
        # cache's half is computed once for the batch, not once per sample.
        w_s, w_c = self.columns(self.gates.weight)
        gates = F.linear(s, w_s) + F.linear(mem, w_c, self.gates.bias)
        g_reset, g_update = torch.sigmoid(gates).chunk(2, dim=-1)
        w_s, w_c = self.columns(self.candidate.weight)
        cand = F.linear(s, w_s) + F.linear(g_reset * mem, w_c,
                                           self.candidate.bias)
        if self.mode == 'released':
            cand = self.candidate_norm(F.gelu(cand))
        return (1 - g_update) * mem + g_update * cand.to(mem.dtype)

    def forward(self, summary: torch.Tensor, update=None) -> torch.Tensor:
        """Update the cache from ``summary`` (B, T_m, D_m); return C_t.
        ``update(self, summary, mem)`` replaces :meth:`update` (the fused
        path's node, :mod:`.fused`)."""
        if summary.shape[1:] != self.memory.shape[1:]:
            raise ValueError(
                f'summary must be (B, {self.cache_len}, {self.cache_dims}), '
                f'got {tuple(summary.shape)}')
        recompute = self.training and _in_backward()
        if recompute and self._pre_update is not None:
            # Activation checkpointing re-runs this forward inside backward:
            # it must see the cache the first run saw, not update it again.
            mem = self._pre_update.to(summary.dtype)
        else:
            cache_sync.before_read(self.memory)
            # A copy: autograd saves it, and _write updates the buffer in
            # place afterwards (in place keeps DDP's references valid).
            mem = self.memory.to(summary.dtype, copy=True)
        new = self.update(summary, mem) if update is None else update(
            self, summary, mem)
        if self.training and not recompute:
            self._pre_update = mem
            self._write(new)
        return new

    @torch.no_grad()
    def _write(self, new: torch.Tensor) -> None:
        mean = new.detach().float().mean(dim=0, keepdim=True)
        if self.sync_cache and _is_distributed():
            # Averaged across ranks (DDP's buffer broadcast would keep rank
            # 0's batch only), in one collective with the other caches.
            cache_sync.cache_sync().add(self.memory, mean)
        else:
            self.memory.copy_(mean)

    def extra_repr(self) -> str:
        return (f'cache_len={self.cache_len}, cache_dims={self.cache_dims}, '
                f'mode={self.mode!r}, sync_cache={self.sync_cache}')


@MODELS.register_module()
class GRCAttention(BaseCacheLayer):
    """GRC attention: attention over a gated recurrent cache, mixed per head
    with the host layer's self-attention output (a mixing cache layer).

    ``forward(x, o_self, hw_shape)``: x (B, N, D) the host's normed input
    tokens (``num_extra_tokens`` first), o_self (B, N, D) the host's output
    after its projection; returns (B, N, D). Steps: see the module docstring.

    Args:
        embed_dims (int): D, channels of the host layer.
        num_heads (int): H, heads of the host layer (shared by the cache).
        cache_len (int | tuple[int, int]): T_m, or its (h, w) grid (needed
            for ``sr_ratio > 1``); usually the tokens at the pretraining
            resolution.
        cache_ratio (float): r in (0, 1]; D_m = int(r * D), a multiple of H.
            Default: 0.5.
        mode (str): ``'released'`` (default: the authors' released module,
            number for number) or ``'paper'`` (the paper's equations).
        sr_ratio (int): Spatial reduction of the cache grid before
            attention, as PVT reduces its keys. Default: 1.
        qkv_bias (bool): Bias of the cache attention's q and kv. Default: True.
        qk_scale (float, optional): Default: head_dim ** -0.5.
        attn_drop (float): Dropout on the cache attention weights.
        proj_drop (float): Dropout after the cache attention's projection.
        pos_conv (bool, optional): The positional conv; default: on in
            ``released`` mode, off in ``paper`` mode.
        num_extra_tokens (int): Leading tokens not on the patch grid (class
            token); they get no positional term. Default: 0.
        lam_init (float, optional): Initial lam; default -1 (released) or 0
            (paper).
        sync_cache (bool): Average cache updates across ranks under DDP.
            Default: True.
        norm_cfg (dict): Norm of the released candidate and the sr branch.
    """

    name = 'grc'

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
        _check_mode(mode)
        if isinstance(cache_ratio, bool) or not isinstance(
                cache_ratio, (int, float)) or not 0 < cache_ratio <= 1:
            raise ValueError(
                f'cache_ratio must be a number in (0, 1], got {cache_ratio!r}')
        cache_dims = int(embed_dims * cache_ratio)
        if cache_dims < num_heads or cache_dims % num_heads:
            raise ValueError(
                f'cache channels int({cache_ratio} * {embed_dims}) = '
                f'{cache_dims} must be a positive multiple of num_heads='
                f'{num_heads}; choose another cache_ratio')
        grid = None if isinstance(cache_len, int) else tuple(cache_len)
        if grid is not None and (len(grid) != 2 or min(grid) < 1):
            raise ValueError(f'cache_len must be an int or an (h, w) grid of '
                             f'positive ints, got {cache_len!r}')
        if sr_ratio > 1 and (grid is None or min(grid) < sr_ratio):
            raise ValueError(
                f'a cache reduced by sr_ratio={sr_ratio} needs cache_len as '
                f'an (h, w) grid of at least {sr_ratio} x {sr_ratio}, got '
                f'{cache_len!r}; give the grid, or a larger pretraining size')

        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.cache_dims = cache_dims
        self.cache_grid = grid
        self.mode = mode
        self.sr_ratio = sr_ratio
        self.num_extra_tokens = num_extra_tokens
        self.attn_drop = attn_drop
        self.scale = qk_scale or (cache_dims // num_heads)**-0.5

        self.cache = GatedRecurrentCache(
            cache_dims,
            math.prod(grid) if grid else cache_len,
            mode=mode,
            sync_cache=sync_cache,
            norm_cfg=norm_cfg)
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

    def reset_cache(self) -> None:
        self.cache.reset_cache()

    def mix_weights(self) -> torch.Tensor:
        """sigma(lam_h) per head (H, ): the share of the cache attention in
        each head's output (0: self-attention only, 1: cache only)."""
        return torch.sigmoid(self.lam.detach().float())

    @torch.no_grad()
    def cache_stats(self) -> Dict[str, float]:
        """``mix``: mean over heads of sigma(lam_h); ``rms``: the cache's
        root-mean-square entry (its Frobenius norm / sqrt(T_m * D_m), so
        layers of different sizes share one axis); ``update_rms``: the same
        of its last training update C_t - C_{t-1} (absent before the first
        training step)."""
        memory = self.cache.memory
        cache_sync.before_read(memory)  # a pending cross-rank update
        stats = dict(mix=self.mix_weights().mean().item(), rms=_rms(memory))
        before = self.cache._pre_update
        if before is not None and before.shape == memory.shape:
            stats['update_rms'] = _rms(memory - before.to(memory.dtype))
        return stats

    @torch.no_grad()
    def cache_maps(self, x, o_self, hw_shape=None) -> Dict[str, torch.Tensor]:
        """The paper's Fig. 6 from one recorded forward (eval mode, so the
        updated cache is recomputed from the frozen buffer as that forward
        computed it): ``self_attention`` and ``cache_attention``, each
        (B, h, w), the mean output per token normalised to [0, 1]."""
        src = o_self if self.mode == 'released' else x
        summary = resize_tokens(src[..., :self.cache_dims], self.cache_len)
        mem = self.cache.update(summary, self.cache.memory.to(summary.dtype))
        o_self_map, o_mem_map = maps.output_maps(self, x, o_self, hw_shape,
                                                 mem)
        return dict(self_attention=o_self_map, cache_attention=o_mem_map)

    def forward(self,
                x: torch.Tensor,
                o_self: torch.Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """x, o_self: (B, N, D); hw_shape: (h, w) of the patch tokens (N =
        num_extra_tokens + h * w; None: a square grid). Returns (B, N, D)."""
        if fused.applies(self, x, o_self):
            # The same steps through custom autograd nodes, faster on CPU;
            # the code below is the reference (switch: switch.py).
            return fused.forward(self, x, o_self, hw_shape)
        B, N, D = x.shape
        H, dm = self.num_heads, self.cache_dims
        # 1. summary of the current tokens, at the cache's length
        src = o_self if self.mode == 'released' else x
        summary = resize_tokens(src[..., :dm], self.cache_len)
        # 2-4. the cache, updated per sample
        mem = self.cache(summary)
        # 5. attention from the tokens to the cache
        o_mem = self.cache_attention(x[..., :dm], mem)
        # 6. the mix, per head: released o_mem^h has D_m / H channels,
        #    zero-padded to D / H (paper: projected to D).
        o_self = o_self.reshape(B, N, H, D // H)
        o_mem = o_mem.view(B, N, H, -1).to(o_self.dtype)
        alpha = torch.sigmoid(self.lam).to(o_self.dtype)
        pos = None
        if self.pos_conv is not None:
            pos = self.positional_term(x, hw_shape).to(o_self.dtype)
        a = alpha[:, None]
        out = a * F.pad(o_mem,
                        (0, D // H - o_mem.shape[-1])) + (1 - a) * o_self
        return out.view(B, N, D) if pos is None else out.view(B, N, D) + pos

    def cache_attention(self, q_in: torch.Tensor,
                        mem: torch.Tensor) -> torch.Tensor:
        """Step 5: H-head attention from q_in (B, N, D_m) to the cache mem
        (B, T_m, D_m), spatially reduced first when ``sr_ratio > 1``;
        returns (B, N, D_m) (``released``) or (B, N, D) (``paper``)."""
        B, N, dm = q_in.shape
        H = self.num_heads
        if self.sr_ratio > 1:
            grid = mem.transpose(1, 2).reshape(B, dm, *self.cache_grid)
            mem = self.mem_norm(self.mem_sr(grid).flatten(2).transpose(1, 2))
        q = self.mem_q(q_in).view(B, N, H, -1).transpose(1, 2)
        k, v = self.mem_kv(mem).view(B, -1, 2, H,
                                     dm // H).permute(2, 0, 3, 1, 4)
        # One head, as wide out as in (released): attention rows sum to 1,
        # so A (V W^T) + b = (A V) W^T + b, and the output projection runs on
        # the T_m cache tokens instead of the N query tokens.
        fold = H == 1 and self.mem_proj.out_features == dm
        if fold:
            v = F.linear(v, self.mem_proj.weight)
        o_mem = F.scaled_dot_product_attention(
            q,
            k,
            v,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale).transpose(1, 2).flatten(2)
        o_mem = o_mem + self.mem_proj.bias if fold else self.mem_proj(o_mem)
        return self.mem_proj_drop(o_mem)

    def positional_term(self, x: torch.Tensor, hw_shape) -> torch.Tensor:
        """Released: the 3x3 conv (groups D_m) of the patch tokens of x on
        their grid; extra tokens get zero. Returns (B, N, D)."""
        B, N, D = x.shape
        n_extra = self.num_extra_tokens
        hw_shape = patch_grid(N, n_extra, hw_shape)
        grid = x[:, n_extra:].transpose(1, 2).reshape(B, D, *hw_shape)
        pos = self.pos_conv(grid).flatten(2).transpose(1, 2)
        return F.pad(pos, (0, 0, n_extra, 0))

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'cache_dims={self.cache_dims}, mode={self.mode!r}, '
                f'sr_ratio={self.sr_ratio}, '
                f'num_extra_tokens={self.num_extra_tokens}')


def _rms(t: torch.Tensor) -> float:
    return t.detach().float().norm().item() / math.sqrt(max(t.numel(), 1))
