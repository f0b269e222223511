"""Memory Caching (MC): a recurrent memory whose state is cached at the end
of every segment, so that each token reads its live ("online") memory and
the cached ones (Behrouz et al., "Memory Caching: RNNs with Growing Memory",
arXiv 2602.24281). See ``docs/mc.md`` for the choices made here.

The method, per head (d channels), for token t of segment s (causal):

- memory: ``linear`` (M_t = M_{t-1} + v_t k_t^T, read M q) or ``deep``
  (M(x) = x + gelu(x W_in) W_out, hidden F = 4d, written by one gradient
  step on the DLA inner loss -<M(k_t), v_t>);
- segments: ``constant`` (length C) or ``logarithmic`` (binary expansion of
  L); the online memory starts each segment from the previous segment's
  final state (``checkpoint``) or from the initial state (``restart``);
- cached memory i < s: the state at the end of segment i; its context
  c^(i) is the sum of segment i's keys, the online one's the sum up to t;
- gates g = softmax_i <u_t, c^(i)> over the cached segments and the online
  one, then one of four aggregations:
  ``residual`` y = m^(s) + sum_{i<s} m^(i)  (no gates),
  ``grm``      y = sum_{i<=s} g_i m^(i),
  ``soup``     y = M_{sum_i g_i theta^(i)}(q_t)  (one read of mixed weights),
  ``ssc``      as grm over the top-k cached segments by <u_t, c^(i)> plus
  the online one.

This module holds that math one token at a time (plain functions, read by
the reference loop in :mod:`.memory_caching_reference`) and the registered
layer. The layer computes it without a token loop, in
:mod:`.memory_caching_chunked`.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_

from mmcached.registry import MODELS
from .cache_layer import BaseCacheLayer
from .memory_caching_fla import fla_available

MEMORIES = ('linear', 'deep')
SEGMENTATIONS = ('constant', 'logarithmic', 'uniform')
SEGMENT_STARTS = ('checkpoint', 'restart')
AGGREGATIONS = ('residual', 'grm', 'soup', 'ssc')
KERNELS = ('auto', 'torch', 'fla')

Theta = Tuple[torch.Tensor, torch.Tensor]  # deep memory (W_in, W_out)


# --------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------
def segment_lengths(length: int,
                    segmentation: str = 'constant',
                    segment_size: Optional[int] = 256,
                    num_segments: Optional[int] = None) -> List[int]:
    """Segment lengths of a sequence of ``length`` tokens, in order.

    ``constant``: ``segment_size`` each, the last one shorter if it does not
    divide. ``logarithmic``: the binary expansion of ``length``, largest
    first (37 -> [32, 4, 1]). ``uniform`` (ours, for images):
    ``num_segments`` segments of (nearly) equal length, the longer ones first
    (37 in 4 -> [10, 9, 9, 9]); fewer if there are fewer tokens.
    """
    if length < 1:
        return []
    if segmentation == 'constant':
        full, rest = divmod(length, segment_size)
        return [segment_size] * full + ([rest] if rest else [])
    if segmentation == 'uniform':
        n = min(num_segments, length)
        base, rest = divmod(length, n)
        return [base + 1] * rest + [base] * (n - rest)
    if segmentation == 'logarithmic':
        return [
            1 << b for b in reversed(range(length.bit_length()))
            if length >> b & 1
        ]
    raise ValueError(f'segmentation must be one of {SEGMENTATIONS}, '
                     f'got {segmentation!r}')


# --------------------------------------------------------------------------
# Memories, one token at a time; leading dims (B, H) are batch dims.
# --------------------------------------------------------------------------
def linear_write(M: torch.Tensor, k: torch.Tensor,
                 v: torch.Tensor) -> torch.Tensor:
    """M (.., d, d) + v k^T."""
    return M + v[..., :, None] * k[..., None, :]


def linear_read(M: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """M q: (.., d, d), (.., d) -> (.., d)."""
    return (M @ q[..., :, None])[..., 0]


def gelu_grad(z: torch.Tensor) -> torch.Tensor:
    """d gelu(z) / dz for the exact (erf) GELU, written so that autograd can
    differentiate it again (the outer training loop does)."""
    return 0.5 * (1 + torch.erf(z * 0.5**0.5)) + \
        z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def deep_read(theta: Theta, x: torch.Tensor) -> torch.Tensor:
    """M(x) = x + gelu(x W_in) W_out; W_in (.., d, F), W_out (.., F, d),
    x (.., d) -> (.., d)."""
    w_in, w_out = theta
    hidden = F.gelu(x[..., None, :] @ w_in)
    return x + (hidden @ w_out)[..., 0, :]


def deep_gradient(theta: Theta, k: torch.Tensor, v: torch.Tensor) -> Theta:
    """Gradient of <M(k), v> with respect to (W_in, W_out); the DLA inner
    loss is its negative, so a step of gradient descent adds it."""
    w_in, w_out = theta
    z = k[..., None, :] @ w_in  # (.., 1, F)
    delta = (v[..., None, :] @ w_out.transpose(-1, -2)) * gelu_grad(z)
    return (k[..., :, None] * delta,
            F.gelu(z).transpose(-1, -2) * v[..., None, :])


def deep_write(theta: Theta, anchor: Theta, k: torch.Tensor, v: torch.Tensor,
               lr: float) -> Theta:
    """theta + lr * grad <M_anchor(k), v>. The exact per-token update takes
    the gradient at theta itself (anchor = theta); the chunk-parallel form
    takes every token's gradient at the chunk's first weights."""
    g_in, g_out = deep_gradient(anchor, k, v)
    return theta[0] + lr * g_in, theta[1] + lr * g_out


# --------------------------------------------------------------------------
# Gates and aggregation, one token at a time
# --------------------------------------------------------------------------
def gate_weights(
        u: torch.Tensor,
        cached_keys: Sequence[torch.Tensor],
        online_keys: torch.Tensor,
        aggregation: str,
        top_k: Optional[int] = None
) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Weights of the cached memories and of the online one for one token.

    u, online_keys (.., d); cached_keys: one (.., d) key sum per cached
    segment. Returns ([g_i (..)] per cached segment, g_online (..)).
    ``residual``: all 1. ``grm`` / ``soup``: softmax of <u, c> over the
    cached segments and the online one. ``ssc``: the same softmax over the
    top-k cached segments (by <u, c>) and the online one, 0 elsewhere.
    """
    if aggregation == 'residual':
        one = torch.ones_like(online_keys[..., 0])
        return [one for _ in cached_keys], one
    scores = [(u * c).sum(-1) for c in cached_keys]
    if aggregation == 'ssc' and len(scores) > top_k:
        # the top-k per (batch, head) element; the others get weight 0
        stacked = torch.stack(scores, -1)
        chosen = stacked.topk(top_k, dim=-1).indices
        kept = torch.zeros_like(
            stacked, dtype=torch.bool).scatter(-1, chosen, True)
        scores = [
            s.masked_fill(~kept[..., i], float('-inf'))
            for i, s in enumerate(scores)
        ]
    online = (u * online_keys).sum(-1)
    g = torch.softmax(torch.stack(scores + [online], -1), -1)
    return list(g[..., :-1].unbind(-1)), g[..., -1]


def aggregate_reads(reads: Sequence[torch.Tensor], read_online: torch.Tensor,
                    g_cached: Sequence[torch.Tensor],
                    g_online: torch.Tensor) -> torch.Tensor:
    """sum_i g_i m^(i) + g_online m^(s): residual, grm and ssc."""
    y = g_online[..., None] * read_online
    for g, m in zip(g_cached, reads):
        y = y + g[..., None] * m
    return y


def soup_params(thetas: Sequence[Tuple[torch.Tensor, ...]],
                theta_online: Tuple[torch.Tensor,
                                    ...], g_cached: Sequence[torch.Tensor],
                g_online: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Memory soup: parameters sum_i g_i theta^(i) + g_online theta^(s)."""

    def scale(g, p):
        return g.reshape(g.shape + (1, ) * (p.dim() - g.dim())) * p

    mixed = [scale(g_online, p) for p in theta_online]
    for g, theta in zip(g_cached, thetas):
        mixed = [m + scale(g, p) for m, p in zip(mixed, theta)]
    return tuple(mixed)


# --------------------------------------------------------------------------
# The layer
# --------------------------------------------------------------------------
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
        memory (str): ``'linear'`` (default) or ``'deep'``.
        segment_size (int, optional): C for ``constant`` segmentation
            (default 256, the paper's); None for the other two.
        segmentation (str): ``'constant'`` (default), ``'logarithmic'``, or
            ``'uniform'`` (ours, for images: ``num_segments`` equal segments
            whatever the length, so the cost stays linear in the tokens at
            any image size).
        num_segments (int, optional): N for ``uniform`` segmentation
            (required there, not allowed elsewhere).
        segment_start (str): ``'checkpoint'`` (default) or ``'restart'``.
        aggregation (str): ``'residual'``, ``'grm'`` (default), ``'soup'``
            or ``'ssc'``.
        top_k (int, optional): cached segments kept by ``ssc`` (required
            there, not allowed elsewhere).
        causal (bool): True (default) for sequences; False for images: the
            mean of a forward and a reversed causal scan.
        qk_scale (float, optional): factor on q; default d ** -0.5 (set 1.0
            for the paper's plain read M q).
        chunk_size (int): deep memory only: tokens per chunk of the
            chunk-parallel update (gradients at the chunk's first weights;
            1 is the exact per-token update, run as a loop). Default 16.
        inner_lr (float): deep memory only: step size of the inner update.
            Default 0.03. The plain DLA update has no normaliser, so the
            stable step depends on the scale of k and v: larger steps made
            the read explode at initialisation in our MQAR model (docs).
        deep_expansion (int): deep memory only: F = deep_expansion * d.
        block_size (int): linear memory only: tokens per block of the
            intra-segment computation (exact for any value). Default 64.
        linear_form (str): linear memory only: ``'auto'`` (default),
            ``'state'`` (O(L N d^2)) or ``'token'`` (O(L^2 d)).
        kernel (str): linear memory, state form: what computes the
            within-segment read and the segment states on CUDA.
            ``'auto'`` (default): flash-linear-attention's chunked kernels
            where ``fla-core`` is installed, else PyTorch; ``'fla'``: the
            same, but an error at build time if fla cannot be used;
            ``'torch'``: always PyTorch. CPU and float64 inputs always take
            PyTorch (see :mod:`.memory_caching_fla` for the limits).
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
        super().__init__(init_cfg=init_cfg)
        _check_choice('memory', memory, MEMORIES)
        _check_choice('segmentation', segmentation, SEGMENTATIONS)
        _check_choice('segment_start', segment_start, SEGMENT_STARTS)
        _check_choice('aggregation', aggregation, AGGREGATIONS)
        _check_choice('linear_form', linear_form, ('auto', 'state', 'token'))
        _check_choice('kernel', kernel, KERNELS)
        if kernel == 'fla':
            if memory != 'linear':
                raise ValueError("kernel='fla' serves memory='linear' only, "
                                 f'got memory={memory!r}')
            if not fla_available():
                raise ValueError(
                    "kernel='fla' needs CUDA and flash-linear-attention's "
                    "kernels ('pip install fla-core'); use kernel='auto' to "
                    'take them only where they can run')
        if int(embed_dims) < 1 or int(num_heads) < 1 or \
                embed_dims % num_heads:
            raise ValueError(f'num_heads ({num_heads}) must divide embed_dims '
                             f'({embed_dims}), both >= 1')
        if segmentation == 'constant':
            segment_size = 256 if segment_size is None else segment_size
            _check_int('segment_size', segment_size)
        elif segment_size is not None:
            raise ValueError('segment_size applies only to '
                             "segmentation='constant'; logarithmic and "
                             'uniform segments follow the sequence length')
        if segmentation == 'uniform':
            if num_segments is None:
                raise ValueError("segmentation='uniform' needs num_segments "
                                 '(an int >= 1: segments per sequence)')
            _check_int('num_segments', num_segments)
        elif num_segments is not None:
            raise ValueError("num_segments applies only to "
                             f"segmentation='uniform', got {segmentation!r}")
        if aggregation == 'ssc':
            if top_k is None:
                raise ValueError("aggregation='ssc' needs top_k (an int >= "
                                 '1: cached segments kept per token)')
            _check_int('top_k', top_k)
        elif top_k is not None:
            raise ValueError(f"top_k applies only to aggregation='ssc', "
                             f'got aggregation={aggregation!r}')
        for opt, val in (('chunk_size', chunk_size),
                         ('deep_expansion', deep_expansion), ('block_size',
                                                              block_size)):
            _check_int(opt, val)
        if not (isinstance(inner_lr, (int, float)) and inner_lr > 0):
            raise ValueError(
                f'inner_lr must be a number > 0, got {inner_lr!r}')
        if qk_scale is not None and not (isinstance(qk_scale, (int, float))
                                         and qk_scale > 0):
            raise ValueError(f'qk_scale must be None or a number > 0, got '
                             f'{qk_scale!r}')
        self.embed_dims = int(embed_dims)
        self.num_heads = int(num_heads)
        self.head_dims = self.embed_dims // self.num_heads
        self.memory = memory
        self.segment_size = segment_size
        self.num_segments = num_segments
        self.segmentation = segmentation
        self.segment_start = segment_start
        self.aggregation = aggregation
        self.top_k = top_k
        self.causal = bool(causal)
        self.qk_scale = float(qk_scale or self.head_dims**-0.5)
        self.chunk_size = int(chunk_size)
        self.inner_lr = float(inner_lr)
        self.block_size = int(block_size)
        self.linear_form = linear_form
        self.kernel = kernel
        self.host_projections = bool(host_projections)

        D, H, d = self.embed_dims, self.num_heads, self.head_dims
        if not self.host_projections:
            self.qkv = nn.Linear(D, 3 * D, bias=qkv_bias)
            self.proj = nn.Linear(D, D)
        self.u_proj = nn.Linear(D, D, bias=qkv_bias) \
            if aggregation != 'residual' else None
        if memory == 'deep':
            hidden = int(deep_expansion) * d
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
        super().init_weights()
        if self.init_cfg is None:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            if self.memory == 'deep':
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
        if self.segmentation != 'constant':
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
        from .memory_caching_chunked import memory_caching
        B, L, D = q.shape
        H, d = self.num_heads, self.head_dims

        def heads(t):
            return None if t is None else \
                t.reshape(B, L, H, d).transpose(1, 2)

        y, state = memory_caching(
            heads(q) * self.qk_scale,
            heads(k),
            heads(v),
            heads(u),
            self._options(),
            state=state,
            return_state=return_state,
            w_in=getattr(self, 'memory_w_in', None),
            w_out=getattr(self, 'memory_w_out', None))
        return y.transpose(1, 2).reshape(B, L, D), state

    def _options(self) -> dict:
        return dict(
            memory=self.memory,
            segmentation=self.segmentation,
            segment_size=self.segment_size,
            num_segments=self.num_segments,
            segment_start=self.segment_start,
            aggregation=self.aggregation,
            top_k=self.top_k,
            chunk_size=self.chunk_size,
            inner_lr=self.inner_lr,
            block_size=self.block_size,
            linear_form=self.linear_form,
            kernel=self.kernel)

    def extra_repr(self) -> str:
        s = (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
             f'memory={self.memory!r}, segmentation={self.segmentation!r}, '
             f'segment_size={self.segment_size}, '
             f'num_segments={self.num_segments}, '
             f'segment_start={self.segment_start!r}, '
             f'aggregation={self.aggregation!r}, causal={self.causal}, '
             f'host_projections={self.host_projections}')
        if self.top_k is not None:
            s += f', top_k={self.top_k}'
        if self.memory == 'deep':
            s += f', chunk_size={self.chunk_size}, inner_lr={self.inner_lr}'
        return s


def _check_choice(option: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f'{option} must be one of {tuple(allowed)}, '
                         f'got {value!r}')


def _check_int(option: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{option} must be an int >= 1, got {value!r}')
