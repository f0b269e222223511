"""Memory Caching without a token loop: the computation behind
:class:`~.layer.MemoryCachingAttention`.

Same outputs as the per-token math of :mod:`.per_token` (tested against
the loop of :mod:`.naive` in float64). :func:`chunk_memory_caching` is the
entry: a shared prelude (segments, blocks, key sums, gates), one place that
picks the path and kernel (:func:`choose_path`), one function per path, and
one shared next-state step. Limits, stated up front:

- Linear memory: exact, no Python loop at all. Per head, with N segments
  of length C, blocks of b tokens inside segments:
  ``state`` form O(L N d^2 / 2 + L b d + L d^2) time (the cached read,
  each token against the states before its segment, then the blocks),
  O(L (N + d) + N d^2) memory saved for backward (the cached read is one
  autograd node that recomputes, :mod:`.weighted_read`);
  ``token`` form O(L^2 d) time and O(L^2) memory. ``auto`` picks the
  cheaper for the shapes (the state form unless C is below ~d / 4; the
  token form only up to ``TOKEN_FORM_MAX_LENGTH`` tokens). The cached read
  covers every state a token may read, masked by its gates, so ``ssc``
  costs what ``grm`` does here (its saving is not realised).
- Deep memory: the chunk-parallel form. Inside a chunk (``chunk_size``
  tokens, a grid restarted at each segment start) every token's gradient is
  taken at the chunk's first weights (Titans' mini-batch form); each token
  still reads weights that include its own and its chunk predecessors'
  updates. Exact per-token DLA for chunk_size = 1, an approximation of it
  otherwise. One Python loop over chunks (the weights depend on the previous
  chunk non-linearly), everything else batched over chunks. Cached reads
  O(L N F d), memory O(L N F) (F = hidden width).
- On CUDA with ``fla-core`` installed (``kernel='auto'`` or ``'fla'``),
  the linear memory's within-segment read and segment states come from
  flash-linear-attention's kernels instead of the blocks below
  (:mod:`.fla`: TF32, its limits).
- Logarithmic and uniform segmentation: one pass only (their segments
  depend on the full length); streaming needs constant segments.
- Half precision: the mixing runs in float32 (states are long sums).

Notation: tensors are per head, (B, H, L, d). A linear state is kept as
K^T V (d_k x d_v), the transpose of M = sum v k^T, so a read is q @ S.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .fla import fla_segments, fla_usable
from .grid import grid_memory_caching
from .options import MCOptions
from .per_token import gelu_grad, segment_lengths
from .weighted_read import row_blocks, weighted_read

#: ``linear_form='auto'`` takes the token form only up to this many tokens
TOKEN_FORM_MAX_LENGTH = 4096


@dataclass
class MCState:
    """What a causal stream carries from one piece to the next (per batch
    element and head).

    offset: tokens of the current, unfinished segment seen so far (0: the
        next token starts a segment). cached_keys (B, H, N, d): key sums of
        the N completed segments; online_keys (B, H, d): of the current one.
    cached: completed segments' memories: linear (S (B, H, N, d, d),), the
        segment's own K^T V (both start modes: checkpoint states are their
        prefix sums); deep (W_in (B, H, N, d, F), W_out (B, H, N, F, d)).
    online: linear (S,) of the current segment's tokens; deep the weights at
        the start of the current chunk (W_in, W_out).
    partial: deep only: the update of the unfinished chunk so far, or None.
    """
    offset: int
    cached_keys: torch.Tensor
    online_keys: torch.Tensor
    cached: Tuple[torch.Tensor, ...]
    online: Tuple[torch.Tensor, ...]
    partial: Optional[Tuple[torch.Tensor, ...]] = None


# --------------------------------------------------------------------------
# Layout: segments of a piece, blocks (chunks) inside segments
# --------------------------------------------------------------------------
def _dims(t: torch.Tensor):
    """(B, H, L, d) of t as ints while tracing, the batch left symbolic
    under torch.export (an exported graph then serves any batch)."""
    H, L, d = (int(n) for n in t.shape[1:])
    B = t.shape[0] if torch.compiler.is_exporting() else int(t.shape[0])
    return B, H, L, d


def _to(t: torch.Tensor, device) -> torch.Tensor:
    """An index tensor made on the CPU, on ``device`` without waiting for
    the device (a plain ``.to`` synchronises with the CUDA stream)."""
    return t.to(device, non_blocking=True)


class SegmentBlocks:
    """Each segment cut into blocks of at most ``size`` tokens on a grid that
    starts at the segment start (the first segment may start ``offset``
    tokens in). Token tensors (B, H, L, d) <-> blocks (B, H, nb, c, d),
    zero-padded. Sums over a segment's blocks go through a (segment, slot)
    grid, S x R with R the most blocks a segment has: small matmuls and
    reductions, where a cumsum or index_add along the block dimension is a
    slow strided kernel on CPU."""

    def __init__(self, seg_lens: List[int], size: int, offset: int, device):
        starts, lens, seg, first, last, ends = [], [], [], [], [], []
        pos = 0
        for s, n in enumerate(seg_lens):
            o = offset if s == 0 else 0
            first.append(len(lens))
            end = o + n
            while o < end:
                step = min(size - o % size, end - o)
                starts.append(pos)
                lens.append(step)
                seg.append(s)
                pos, o = pos + step, o + step
                ends.append(o)
            last.append(len(lens) - 1)
        self.n, self.c = len(lens), max(lens) if lens else 1
        self.lens = lens
        self.ends = ends  # each block's end, counted from its segment start
        self.seg = _to(torch.tensor(seg, dtype=torch.long), device)
        self.seg_first = first
        self.seg_last = last
        slots = [b - first[s] for b, s in enumerate(seg)]
        self.num_segs = len(seg_lens)
        self.num_slots = max(slots, default=0) + 1
        # every segment has num_slots blocks: the grid is a view
        self.grid_trivial = len(lens) == self.num_segs * self.num_slots
        if not self.grid_trivial:
            cell = torch.tensor(seg) * self.num_slots + torch.tensor(slots)
            grid = torch.full((self.num_segs * self.num_slots, ), len(lens))
            grid[cell] = torch.arange(len(lens))
            self.cell, self.grid = _to(cell, device), _to(grid, device)
        self.trivial = all(n == self.c for n in lens)
        if not self.trivial:
            ar = torch.arange(self.c)
            idx = torch.tensor(starts)[:, None] + ar
            idx = torch.where(ar < torch.tensor(lens)[:, None], idx, pos)
            self.idx = _to(idx, device)
            self.tok = _to(
                torch.cat([
                    b * self.c + torch.arange(n) for b, n in enumerate(lens)
                ]), device)

    def to_blocks(self, x: torch.Tensor) -> torch.Tensor:
        B, H = x.shape[:2]
        if self.trivial:
            return x.reshape(B, H, self.n, self.c, -1)
        return F.pad(x, (0, 0, 0, 1))[:, :, self.idx]

    def from_blocks(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2, 3)
        return flat if self.trivial else flat[:, :, self.tok]

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, nb, ...) -> (B, H, S, R, E), zeros in empty cells."""
        B, H = x.shape[:2]
        x = x.reshape(B, H, self.n, -1)
        if not self.grid_trivial:
            x = F.pad(x, (0, 0, 0, 1))[:, :, self.grid]
        return x.reshape(B, H, self.num_segs, self.num_slots, -1)

    def seg_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Per block, the sum of the earlier blocks of its segment;
        x (B, H, nb, ...)."""
        grid = self._grid(x)
        R = self.num_slots
        earlier = torch.ones(R, R, dtype=x.dtype, device=x.device).tril(-1)
        # expanded to the grid's batch dims, so that the FLOP counter counts
        # every product (it reads a broadcast matmul's batch off the left)
        prefix = (earlier.expand(grid.shape[:3] + (R, R)) @ grid).flatten(2, 3)
        if not self.grid_trivial:
            prefix = prefix[:, :, self.cell]
        return prefix.reshape(x.shape)

    def seg_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Per segment, the sum of its blocks: (B, H, S, ...)."""
        return self._grid(x).sum(3).reshape(x.shape[:2] + (self.num_segs, ) +
                                            x.shape[3:])


# --------------------------------------------------------------------------
# Gates, for all tokens at once
# --------------------------------------------------------------------------
def _key_sums(Kb, blocks: SegmentBlocks, cont: Optional[torch.Tensor]):
    """Online key sums per token (B, H, L, d) and segment key sums
    (B, H, S, d); ``cont``: the stream's online key sum, added to the
    first segment."""
    bsum = Kb.sum(3)
    prefix = blocks.seg_prefix(bsum)
    seg = blocks.seg_sum(bsum)
    if cont is not None:
        first = (blocks.seg == 0).to(Kb.dtype)[:, None]
        prefix = prefix + first * cont[:, :, None]
        seg = torch.cat([seg[:, :, :1] + cont[:, :, None], seg[:, :, 1:]], 2)
    online = blocks.from_blocks(Kb.cumsum(3) + prefix[:, :, :, None])
    return online, seg


def _gates(u, online_keys, cached_keys, valid, aggregation, top_k):
    """(g (B, H, L, Nc), g_online (B, H, L)): the weights of the cached
    segments (0 where ``valid`` (L, Nc) is False: not yet cached) and of
    the online memory."""
    B, H, L = online_keys.shape[:3]
    if aggregation == 'residual':
        g = valid.to(online_keys.dtype).expand(B, H, L, -1)
        return g, online_keys.new_ones(B, H, L)
    scores = u @ cached_keys.transpose(-1, -2)
    keep = valid
    if aggregation == 'ssc' and scores.shape[-1] > top_k:
        masked = scores.masked_fill(~valid, float('-inf'))
        chosen = masked.topk(top_k, dim=-1).indices
        keep = torch.zeros_like(
            scores, dtype=torch.bool).scatter(-1, chosen, True) & valid
    scores = scores.masked_fill(~keep, float('-inf'))
    online = (u * online_keys).sum(-1, keepdim=True)
    g = torch.softmax(torch.cat([scores, online], -1), -1)
    return g[..., :-1], g[..., -1]


# --------------------------------------------------------------------------
# The shared prelude: where the piece's segments lie, its blocks, the gates
# --------------------------------------------------------------------------
@dataclass
class Layout:
    """The segments of a piece (B, H, L, d) whose first token is the
    ``offset``-th of its segment, after ``num_prev`` segments completed by
    earlier pieces.

    seg_lens: the piece's segment lengths (S of them); seg_tok (L,): each
    token's global segment; num_cached (Nc): the segments any token of the
    piece may read as cached (its last one never is); valid (L, Nc): which
    of them token t may read; last_complete: the piece ends a segment.
    """
    seg_lens: List[int]
    offset: int
    num_prev: int
    seg_tok: torch.Tensor
    num_cached: int
    valid: torch.Tensor
    last_complete: bool

    @classmethod
    def make(cls, L: int, opts: MCOptions, state: Optional[MCState],
             device) -> 'Layout':
        offset = state.offset if state is not None else 0
        if not opts.streamable and offset:
            raise ValueError(f'{opts.segmentation} segmentation cannot '
                             'continue a stream')
        if opts.streamable:
            C = opts.segment_size
            first = min(C - offset, L) if offset else 0
            seg_lens = ([first] if first else []) + \
                segment_lengths(L - first, 'constant', C)
        else:
            seg_lens = opts.segment_lengths(L)
        Np = 0 if state is None else state.cached_keys.shape[2]
        S = len(seg_lens)
        # made on the CPU (on a GPU it would sync), one constant block per
        # segment: torch.compile traces it (repeat_interleave's shape
        # depends on data, a graph break), and no Python loop over tokens
        seg_tok = torch.cat([
            torch.full((n, ), s, dtype=torch.long)
            for s, n in enumerate(seg_lens)
        ]) + Np
        Nc = Np + S - 1  # the piece's last segment is never read as cached
        valid = _to(torch.arange(Nc)[None] < seg_tok[:, None], device)
        # one pass (logarithmic, uniform): nothing continues
        last_complete = not opts.streamable or \
            (offset if S == 1 else 0) + seg_lens[-1] == opts.segment_size
        return cls(seg_lens, offset, Np, _to(seg_tok, device), Nc, valid,
                   last_complete)

    @property
    def num_segs(self) -> int:
        return len(self.seg_lens)

    @property
    def num_done(self) -> int:
        """Segments of the piece that are complete (cached from now on)."""
        return self.num_segs - (0 if self.last_complete else 1)

    def rows(self, num_states: int):
        """Row blocks of the cached read against ``num_states`` states."""
        return row_blocks(self.seg_lens, self.num_prev, num_states)


@dataclass
class Prelude:
    """What every path shares: the piece in blocks, the keys (Kb in blocks;
    per token the online key sums; per segment, earlier pieces' first,
    ``all_keys`` (B, H, Np + S, d)) and the gates (g (B, H, L, Nc),
    g_on (B, H, L))."""
    blocks: SegmentBlocks
    Kb: torch.Tensor
    seg_keys: torch.Tensor
    all_keys: torch.Tensor
    g: torch.Tensor
    g_on: torch.Tensor
    cont: bool


def prelude(k, u, opts: MCOptions, state: Optional[MCState], layout: Layout,
            block_size: int) -> Prelude:
    B, H, L, d = _dims(k)
    cont = state is not None and layout.offset > 0
    blocks = SegmentBlocks(layout.seg_lens, block_size, layout.offset,
                           k.device)
    Kb = blocks.to_blocks(k)
    online_keys, seg_keys = _key_sums(Kb, blocks,
                                      state.online_keys if cont else None)
    prev_keys = state.cached_keys if state is not None else \
        k.new_zeros(B, H, 0, d)
    all_keys = torch.cat([prev_keys, seg_keys], 2)
    g, g_on = _gates(u, online_keys, all_keys[:, :, :layout.num_cached],
                     layout.valid, opts.aggregation, opts.top_k)
    return Prelude(blocks, Kb, seg_keys, all_keys, g, g_on, cont)


# --------------------------------------------------------------------------
# The one place that picks the path and the kernel
# --------------------------------------------------------------------------
PATHS = ('deep', 'linear_state', 'linear_state_fla', 'linear_token',
         'linear_grid')


def takes_grid(q: torch.Tensor, opts: MCOptions, state: Optional[MCState],
               return_state: bool) -> bool:
    """Whether torch.export traces a symbolic length (dynamic height and
    width) and the grid form (:mod:`.grid`) serves the options: then the
    segment layout is built in the graph instead of by :class:`Layout` in
    Python, which would fix the length. Decided before any layout exists,
    so apart from :func:`choose_path`. torch.compile keeps the chunked
    engine (a new length recompiles): compiled with ``dynamic=True``
    through the grid form, a toy layer's first training step had not
    finished after 11 CPU minutes here."""
    return torch.compiler.is_exporting() and \
        not isinstance(q.shape[2], int) and opts.memory == 'linear' and \
        opts.segmentation != 'logarithmic' and state is None and \
        not return_state


def choose_path(q: torch.Tensor, opts: MCOptions, layout: Layout,
                blocks: SegmentBlocks) -> str:
    """One of :data:`PATHS` for this call: the deep memory's chunk-parallel
    form, or the linear memory's state form (flash-linear-attention's
    kernels where ``kernel`` allows and they can run) or token form
    (``linear_form``; ``'auto'`` takes the one with fewer multiply-adds).
    ``'linear_grid'`` is taken before a layout exists (:func:`takes_grid`)."""
    if opts.memory == 'deep':
        return 'deep'
    form = opts.linear_form
    if form == 'auto':
        # multiply-adds per head; the token form also keeps an L x L
        # matrix for backward, so it is only taken for short pieces
        L, d = int(q.shape[2]), int(q.shape[3])
        Nc, Np, c = layout.num_cached, layout.num_prev, blocks.c
        state_cost = L * Nc * d * d // 2 + 2 * L * c * d + 3 * L * d * d
        token_cost = 2 * L * L * d + L * Np * d * d + L * d * d
        form = 'token' if token_cost < state_cost and \
            L <= TOKEN_FORM_MAX_LENGTH else 'state'
    if form == 'token':
        return 'linear_token'
    if opts.kernel != 'torch' and fla_usable(q) and \
            not torch.jit.is_tracing():  # FLOPs: count ours
        return 'linear_state_fla'
    return 'linear_state'


# --------------------------------------------------------------------------
# Linear memory
# --------------------------------------------------------------------------
Memories = Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...],
                 Optional[Tuple[torch.Tensor, ...]]]


def _segment_states(v, pre: Prelude, S0):
    """Block states K^T V and each segment's own (B, H, S, d, d) (plus the
    stream's carried state S0 in the first)."""
    Vb = pre.blocks.to_blocks(v)
    Sb = pre.Kb.transpose(-1, -2) @ Vb  # block states K^T V
    seg_states = pre.blocks.seg_sum(Sb)
    if pre.cont:
        seg_states = torch.cat(
            [seg_states[:, :, :1] + S0[:, :, None], seg_states[:, :, 1:]], 2)
    return Vb, Sb, seg_states


def _read_weights(pre: Prelude, opts: MCOptions, layout: Layout):
    """W (B, H, L, Nc): the weight of each cached segment's own state in
    token t's read. The cached state of segment i is, with checkpoints, the
    sum of the segments' own states S_j, j <= i, and the online one adds
    all j < s: token t reads S_j with weight g_online + sum_{j<=i<s} g_i."""
    if opts.segment_start == 'checkpoint':
        return (pre.g.flip(-1).cumsum(-1).flip(-1) + pre.g_on[..., None]) * \
            layout.valid
    return pre.g


def _linear_memories(q, seg_states, prev, layout: Layout) -> Memories:
    B, H, _, d = q.shape
    online = (q.new_zeros(B, H, d, d), ) if layout.last_complete else \
        (seg_states[:, :, -1], )
    return (torch.cat([prev, seg_states], 2), ), online, None


def linear_state(q, k, v, opts, state, layout: Layout, pre: Prelude,
                 use_fla: bool):
    """The state form: online read from block states (or fla's kernels),
    cached read against the segments' states. O(L N d^2 / 2)."""
    B, H, L, d = _dims(q)
    Nc, blocks = layout.num_cached, pre.blocks
    S0 = state.online[0] if pre.cont else None
    prev = state.cached[0] if state is not None else q.new_zeros(B, H, 0, d, d)
    if use_fla:  # the online read and segment states from fla's kernels
        online, seg_states = fla_segments(q, k, v, layout.seg_lens, S0)
    else:
        Vb, Sb, seg_states = _segment_states(v, pre, S0)
        prefix = blocks.seg_prefix(Sb)
        if pre.cont:
            first = (blocks.seg == 0).to(q.dtype)[:, None, None]
            prefix = prefix + first * S0[:, :, None]
        # causal within the block: a mask product (tril is slower on CPU)
        causal = torch.ones(
            blocks.c, blocks.c, dtype=q.dtype, device=q.device).tril()
        Qb = blocks.to_blocks(q)
        intra = ((Qb @ pre.Kb.transpose(-1, -2)) * causal) @ Vb
        online = blocks.from_blocks(intra + Qb @ prefix)
    W = _read_weights(pre, opts, layout)
    cached = weighted_read(q, W,
                           torch.cat([prev, seg_states], 2)[:, :, :Nc],
                           layout.rows(Nc))
    y = pre.g_on[..., None] * online + cached
    return y, _linear_memories(q, seg_states, prev, layout)


def linear_token(q, k, v, opts, state, layout: Layout, pre: Prelude,
                 return_state: bool):
    """The token form: each token's read as weighted attention over the
    piece's tokens, earlier pieces' states read as states. O(L^2 d)."""
    B, H, L, d = _dims(q)
    Np, Nc, S = layout.num_prev, layout.num_cached, layout.num_segs
    seg_tok = layout.seg_tok
    S0 = state.online[0] if pre.cont else None
    prev = state.cached[0] if state is not None else q.new_zeros(B, H, 0, d, d)
    W = _read_weights(pre, opts, layout)
    # A[t, j] = weight of token j's write for reader t
    Ntot = Np + S
    Wx = torch.cat([W, W.new_zeros(B, H, L, Ntot - Nc)], -1) + \
        pre.g_on[..., None] * F.one_hot(seg_tok, Ntot).to(W.dtype)
    A = Wx.index_select(-1, seg_tok).tril()
    y = (A * (q @ k.transpose(-1, -2))) @ v
    if Np:
        y = y + weighted_read(q, W[..., :Np], prev, layout.rows(Np))
    if pre.cont:  # the continuing segment's earlier tokens, as a state
        y = y + Wx[..., Np:Np + 1] * (q @ S0)
    if not return_state:
        return y, None
    seg_states = _segment_states(v, pre, S0)[2]
    return y, _linear_memories(q, seg_states, prev, layout)


# --------------------------------------------------------------------------
# Deep memory
# --------------------------------------------------------------------------
def deep(q, k, v, opts, state, layout: Layout, pre: Prelude, w_in, w_out):
    """The chunk-parallel deep memory (see the module docstring)."""
    B, H, L, d = _dims(q)
    Fh = w_in.shape[-1]
    lr, cs = opts.inner_lr, opts.chunk_size
    restart = opts.segment_start == 'restart'
    Nc, S = layout.num_cached, layout.num_segs
    blocks, Kb, g, g_on = pre.blocks, pre.Kb, pre.g, pre.g_on
    Qb, Vb = blocks.to_blocks(q), blocks.to_blocks(v)

    # Pass 1, over chunks in order: each chunk's gradients at its first
    # weights (anchor), and the weights it ends with.
    init = (w_in.to(q.dtype).expand(B, H, d,
                                    Fh), w_out.to(q.dtype).expand(B, H, Fh, d))
    anchor = state.online if state is not None else init
    partial = state.partial if pre.cont else None
    seg_first = set(blocks.seg_first)
    seg_end = {
        blk: s
        for s, blk in enumerate(blocks.seg_last)
        if s < S - 1 or layout.last_complete
    }
    bases, hiddens, deltas, cached = [], [], [], []
    for b in range(blocks.n):
        if b in seg_first and restart and not (pre.cont and b == 0):
            anchor = init
        K, V = Kb[:, :, b], Vb[:, :, b]
        z = K @ anchor[0]
        hidden = F.gelu(z)
        delta = (V @ anchor[1].transpose(-1, -2)) * gelu_grad(z)
        step = (K.transpose(-1, -2) @ delta, hidden.transpose(-1, -2) @ V)
        base = anchor if partial is None else \
            tuple(a + p for a, p in zip(anchor, partial))
        end = tuple(w + lr * s for w, s in zip(base, step))
        bases.append(base)
        hiddens.append(hidden)
        deltas.append(delta)
        if b in seg_end or blocks.ends[b] % cs == 0:
            anchor, partial = end, None
        else:  # the piece ends inside a chunk: keep its anchor
            partial = tuple(e - a for e, a in zip(end, anchor))
        if b in seg_end:
            cached.append(end)
    base_in = torch.stack([x[0] for x in bases], 2)  # (B, H, nb, d, F)
    base_out = torch.stack([x[1] for x in bases], 2)  # (B, H, nb, F, d)
    Hb = torch.stack(hiddens, 2)  # (B, H, nb, c, F)
    Db = torch.stack(deltas, 2)

    # Pass 2, all chunks at once: token j reads the weights its chunk
    # started from plus the updates of tokens i <= j of the chunk:
    # x W_in,j = x W_in + lr sum_i (x . k_i) delta_i, and likewise W_out.
    def online_first(xb):
        return xb @ base_in + lr * (xb @ Kb.transpose(-1, -2)).tril() @ Db

    def online_second(ab):
        return ab @ base_out + lr * (ab @ Hb.transpose(-1, -2)).tril() @ Vb

    prev = state.cached if state is not None else \
        (q.new_zeros(B, H, 0, d, Fh), q.new_zeros(B, H, 0, Fh, d))
    stacked = tuple(
        torch.cat([prev[i]] + [c[i][:, :, None] for c in cached], 2)
        for i in range(2))
    c_in, c_out = (s[:, :, :Nc] for s in stacked)
    z_on = blocks.from_blocks(online_first(Qb))
    if opts.aggregation == 'soup':
        rows = layout.rows(Nc)
        z = g_on[..., None] * z_on + weighted_read(q, g, c_in, rows)
        a = F.gelu(z)
        y = q + g_on[..., None] * blocks.from_blocks(
            online_second(blocks.to_blocks(a))) + \
            weighted_read(a, g, c_out, rows)
    else:
        m_on = q + blocks.from_blocks(
            online_second(F.gelu(blocks.to_blocks(z_on))))
        y = g_on[..., None] * m_on
        if Nc:  # cached reads q + gelu(q W_in^(n)) W_out^(n)
            y = y + g.sum(
                -1, keepdim=True) * q + _deep_cached_read(
                    q, g, c_in, c_out, layout.rows(Nc))
    return y, (stacked, anchor, partial)


def _deep_cached_read(q, g, c_in, c_out, rows):
    """sum_n g[.., t, n] gelu(q_t W_in^(n)) W_out^(n) for every token, a row
    block at a time against the states its rows may read: q (B, H, L, d),
    g (B, H, L, N), c_in (B, H, N, d, F), c_out (B, H, N, F, d)."""
    B, H, L, d = _dims(q)
    parts, pos = [], 0
    for r0, r1, n in rows:
        if r0 > pos:
            parts.append(q.new_zeros(B, H, r0 - pos, d))
        a = F.gelu(q[:, :, None, r0:r1] @ c_in[:, :, :n])  # (B, H, n, r, F)
        z = (g[:, :, r0:r1, :n, None] * a.transpose(2, 3)).flatten(-2)
        parts.append(z @ c_out[:, :, :n].flatten(2, 3))
        pos = r1
    if pos < L:
        parts.append(q.new_zeros(B, H, L - pos, d))
    return torch.cat(parts, 2)


# --------------------------------------------------------------------------
# The shared next-state step, and the entry point
# --------------------------------------------------------------------------
def next_state(q, layout: Layout, pre: Prelude, memories: Memories) -> MCState:
    """What the next piece continues from: the completed segments' keys and
    memories, and the unfinished segment's (empty when the piece ended
    one)."""
    cached, online, partial = memories
    B, H, _, d = q.shape
    n = layout.num_prev + layout.num_done
    if layout.last_complete:
        offset, online_keys = 0, q.new_zeros(B, H, d)
    else:
        offset = (layout.offset if layout.num_segs == 1 else 0) + \
            layout.seg_lens[-1]
        online_keys = pre.seg_keys[:, :, -1]
    return MCState(offset, pre.all_keys[:, :, :n], online_keys,
                   tuple(c[:, :, :n] for c in cached), online, partial)


def chunk_memory_caching(q,
                         k,
                         v,
                         u,
                         opts: MCOptions,
                         state: Optional[MCState] = None,
                         return_state: bool = False,
                         w_in=None,
                         w_out=None):
    """Causal MC over per-head tensors q (already scaled), k, v, u
    (B, H, L, d) (u None for residual). Returns (y (B, H, L, d), the state
    to continue from or None). Half precision computes in float32."""
    dtype = q.dtype
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) \
        else dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v = (t.to(compute) for t in (q, k, v))
        u = None if u is None else u.to(compute)
        if takes_grid(q, opts, state, return_state):  # path 'linear_grid'
            return grid_memory_caching(q, k, v, u, opts).to(dtype), None
        layout = Layout.make(int(q.shape[2]), opts, state, q.device)
        block_size = opts.chunk_size if opts.memory == 'deep' else \
            opts.block_size
        pre = prelude(k, u, opts, state, layout, block_size)
        path = choose_path(q, opts, layout, pre.blocks)
        if path == 'deep':
            y, memories = deep(q, k, v, opts, state, layout, pre,
                               w_in.to(compute), w_out.to(compute))
        elif path == 'linear_token':
            y, memories = linear_token(q, k, v, opts, state, layout, pre,
                                       return_state)
        else:
            y, memories = linear_state(q, k, v, opts, state, layout, pre,
                                       path == 'linear_state_fla')
        new_state = next_state(q, layout, pre, memories) \
            if return_state else None
    return y.to(dtype), new_state
