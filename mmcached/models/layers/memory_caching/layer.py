"""The Memory Caching layer (Behrouz et al., "Memory Caching: RNNs with
Growing Memory", arXiv 2602.24281): a replacing cache layer (see
:mod:`..cache_layer`) whose token mixing is :func:`.chunk.chunk_memory_caching`
over its own or its host's projections. The math, one token at a time:
:mod:`.per_token`; the options: :class:`.options.MCOptions`.
"""
from numbers import Real
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_

from mmcached.registry import MODELS
from ..cache_layer import BaseCacheLayer
from .chunk import chunk_memory_caching
from .maps import scan_gate_weights
from .options import MCOptions


@MODELS.register_module()
class MemoryCachingAttention(BaseCacheLayer):
    """Memory Caching token mixer: (B, L, D) -> (B, L, D).

    q, k, v come from the layer's own projections or, with
    ``host_projections=True``, from the host attention passed to
    :meth:`forward` (``host.project_qkv`` / ``host.project_out``); u always
    comes from the layer's own ``u_proj`` (absent for ``residual``, which
    has no gates). Head h is channels [h*d, (h+1)*d), d = D / H.

    Args:
        embed_dims (int): D.
        num_heads (int): H; must divide D.
        memory, segment_size, num_segments, segmentation, segment_start,
        aggregation, top_k, chunk_size, inner_lr, deep_expansion,
            block_size, linear_form, kernel: how tokens are mixed, validated
            as one :class:`~.options.MCOptions` (``self.options``), whose
            docstring has their meaning and defaults (``segment_size`` 256
            for ``constant`` segmentation; ``'uniform'`` segmentation, ours
            for images, keeps ``num_segments`` whatever the length, so the
            cost stays linear in the tokens at any image size).
        causal (bool): True (default) for sequences; False for images: the
            mean of a forward and a reversed causal scan.
        qk_scale (float, optional): factor on q; default d ** -0.5 (set 1.0
            for the paper's plain read M q).
        qkv_bias (bool): bias of the own q / k / v / u projections.
        host_projections (bool): use the host's q / k / v / output
            projections instead of owning them. Default False.
        init_cfg (dict, optional): mmengine init config.
    """

    replaces_host = True
    name = 'mc'

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 memory: str = 'linear',
                 segment_size: Optional[int] = None,
                 num_segments: Optional[int] = None,
                 segmentation: str = 'constant',
                 segment_start: str = 'checkpoint',
                 aggregation: str = 'grm',
                 top_k: Optional[int] = None,
                 causal: bool = True,
                 qk_scale: Optional[float] = None,
                 chunk_size: int = 16,
                 inner_lr: float = 0.03,
                 deep_expansion: int = 4,
                 block_size: int = 64,
                 linear_form: str = 'auto',
                 kernel: str = 'auto',
                 qkv_bias: bool = True,
                 host_projections: bool = False,
                 init_cfg=None):
        # the arguments named as MCOptions' fields, typed and validated there
        opts = MCOptions.pick(locals())
        super().__init__(init_cfg=init_cfg)
        self.options = opts
        if int(embed_dims) < 1 or int(num_heads) < 1 or \
                embed_dims % num_heads:
            raise ValueError(f'num_heads ({num_heads}) must divide embed_dims '
                             f'({embed_dims}), both >= 1')
        if qk_scale is not None and (isinstance(qk_scale, bool)
                                     or not isinstance(qk_scale, Real)
                                     or not qk_scale > 0):
            raise ValueError(f'qk_scale must be None or a number > 0, got '
                             f'{qk_scale!r}')
        self.embed_dims = int(embed_dims)
        self.num_heads = int(num_heads)
        self.head_dims = self.embed_dims // self.num_heads
        self.causal = bool(causal)
        self.qk_scale = float(qk_scale or self.head_dims**-0.5)
        self.host_projections = bool(host_projections)

        D, H, d = self.embed_dims, self.num_heads, self.head_dims
        if not self.host_projections:
            self.qkv = nn.Linear(D, 3 * D, bias=qkv_bias)
            self.proj = nn.Linear(D, D)
        self.u_proj = nn.Linear(D, D, bias=qkv_bias) \
            if opts.aggregation != 'residual' else None
        if opts.memory == 'deep':
            hidden = opts.deep_expansion * d
            # the deep memory's initial weights, per head (learned)
            self.memory_w_in = nn.Parameter(torch.empty(H, d, hidden))
            self.memory_w_out = nn.Parameter(torch.empty(H, hidden, d))
            self._init_deep_memory()

    def _init_deep_memory(self) -> None:
        # W_in ~ d^-0.5 keeps x W_in at the scale of x, so the first writes
        # act like a linear memory's; W_out small: M_0(x) ~= x.
        trunc_normal_(self.memory_w_in, std=self.head_dims**-0.5)
        trunc_normal_(self.memory_w_out, std=.02)

    def init_weights(self):
        super().init_weights()  # the Linears (BaseCacheLayer)
        if self.init_cfg is None and self.options.memory == 'deep':
            self._init_deep_memory()

    def reset_cache(self) -> None:
        """No-op: MC keeps no state across calls in a backbone (its caches
        live within one sequence); :meth:`stream` carries state explicitly."""

    # the layer as its own host
    def project_qkv(
            self, x: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.host_projections:
            raise RuntimeError('host_projections=True: pass the host '
                               'attention as forward(x, host=...)')
        return self.qkv(x).chunk(3, dim=-1)

    def project_out(self, y: torch.Tensor) -> torch.Tensor:
        if self.host_projections:
            raise RuntimeError('host_projections=True: pass the host '
                               'attention as forward(x, host=...)')
        return self.proj(y)

    def _project(self, x, host):
        host = self if host is None else host
        q, k, v = host.project_qkv(x)
        u = self.u_proj(x) if self.u_proj is not None else None
        return host, q, k, v, u

    def forward(self,
                x: torch.Tensor,
                hw_shape=None,
                host=None) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D). ``hw_shape`` is not used: image tokens
        (with any leading extra tokens) are read in raster order."""
        host, q, k, v, u = self._project(x, host)
        if self.causal:
            y = self.mix(q, k, v, u)[0]
        else:
            # the reversed scan is the same causal layer on flipped tokens;
            # both directions share one call along the batch
            B = x.shape[0]
            both = [
                None if t is None else torch.cat([t, t.flip(1)])
                for t in (q, k, v, u)
            ]
            y2 = self.mix(*both)[0]
            y = 0.5 * (y2[:B] + y2[B:].flip(1))
        return host.project_out(y)

    def stream(self, x: torch.Tensor, state=None, host=None):
        """Causal streaming: a piece (B, n, D) of a longer sequence and the
        state returned by the previous piece (None at the start); returns
        (y (B, n, D), state). Pieces of any lengths give the one-pass output.
        Needs ``causal=True`` and ``constant`` segmentation."""
        if not self.causal:
            raise ValueError('stream() needs causal=True')
        if not self.options.streamable:
            raise ValueError("stream() needs segmentation='constant': "
                             'logarithmic and uniform segments depend on the '
                             'full length')
        if x.shape[1] == 0:
            raise ValueError('stream() needs a piece of at least 1 token')
        host, q, k, v, u = self._project(x, host)
        y, state = self.mix(q, k, v, u, state=state, return_state=True)
        return host.project_out(y), state

    def mix(self, q, k, v, u, state=None, return_state=False):
        """The token mixing on projected (B, L, D) tensors (u None for
        residual); returns (y (B, L, D), state or None)."""
        B, L, D = q.shape
        y, state = chunk_memory_caching(
            self.heads(q) * self.qk_scale,
            self.heads(k),
            self.heads(v),
            self.heads(u),
            self.options,
            state=state,
            return_state=return_state,
            w_in=getattr(self, 'memory_w_in', None),
            w_out=getattr(self, 'memory_w_out', None))
        return y.transpose(1, 2).reshape(B, L, D), state

    def heads(self, t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """(B, L, D) -> per head (B, H, L, d); None stays None."""
        if t is None:
            return None
        B, L, _ = t.shape
        return t.reshape(B, L, self.num_heads, self.head_dims).transpose(1, 2)

    @torch.no_grad()
    def cache_maps(self,
                   x,
                   hw_shape=None,
                   host=None) -> Dict[str, torch.Tensor]:
        """Which segments each token reads, from one recorded forward:
        ``gates`` (and ``gates_reversed`` for ``causal=False``, rows in
        raster order), each (B, L, S), mean over heads: row t holds the gate
        weight of each cached segment i < s(t), the online weight in column
        s(t) (the token's own segment) and 0 after it (see
        :func:`.maps.scan_gate_weights`)."""
        _, _, k, _, u = self._project(x, host)
        out = dict(gates=scan_gate_weights(self, k, u))
        if not self.causal:
            # the reversed scan, its rows put back in raster order (its
            # segment 0 is then the last segment in raster order)
            flipped = None if u is None else u.flip(1)
            out['gates_reversed'] = scan_gate_weights(self, k.flip(1),
                                                      flipped).flip(1)
        return out

    def extra_repr(self) -> str:
        o = self.options
        s = (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
             f'memory={o.memory!r}, segmentation={o.segmentation!r}, '
             f'segment_size={o.segment_size}, '
             f'num_segments={o.num_segments}, '
             f'segment_start={o.segment_start!r}, '
             f'aggregation={o.aggregation!r}, causal={self.causal}, '
             f'host_projections={self.host_projections}')
        if o.top_k is not None:
            s += f', top_k={o.top_k}'
        if o.memory == 'deep':
            s += f', chunk_size={o.chunk_size}, inner_lr={o.inner_lr}'
        return s
