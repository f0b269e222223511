"""Memory Caching's linear memory with its segment layout built in the
graph: the form :func:`~.chunk.chunk_memory_caching` takes when the
sequence length is symbolic (torch.export with dynamic height and width),
so that one exported graph serves any image size.

The chunked engine lays segments out in Python from the length (segment
lengths, blocks, row blocks of the cached read), which fixes the length
in a traced graph. Here the layout is tensors computed from the length:
the segments are gathered into M = N nb blocks of b tokens (N segments, nb
blocks each, zero-padded to the longest segment), the math is the chunked
engine's state form on those blocks, and each token is read back from its
cell. Same outputs as the chunked engine and the per-token loop (tested in
float64; exported, against eager at 4 to 200 tokens). Limits, stated up
front:

- linear memory, one pass (no stream state), ``constant`` or ``uniform``
  segmentation: the deep memory's chunk loop and ``logarithmic``
  segmentation's number of segments (the bits of the length) are Python
  over the length, and stay fixed at the export size;
- ``uniform`` needs at least ``num_segments`` tokens (a guard recorded in
  the exported program);
- cost: padding to the longest segment and to whole blocks (up to
  N b cells more than tokens, plus a spare block for one uniform segment
  or a spare segment for constant ones, see :class:`SegmentGrid`), and the
  cached read keeps every token's read of every segment, O(L N d) memory
  (the chunked engine's custom autograd node, :mod:`.weighted_read`,
  saves that): an inference form, not the training path;
- within-segment sums are differences of running sums (the chunked engine
  sums each segment's blocks on their own): the same float32 error at
  3136 and 16800 tokens in a test here (4e-6 and 1.4e-5 of the largest
  output, both forms).
"""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from .options import MCOptions


class SegmentGrid(NamedTuple):
    """The segments of L tokens as M = N nb blocks of b tokens: segment s
    fills blocks [s nb, (s + 1) nb), zero-padded to nb b tokens.

    idx (M, b): the token in each cell (L where the cell is padding);
    cell (L,): each token's cell in the flattened (M b) grid; block_seg
    (M,): each block's segment; first (M,): the first block of that
    segment; num_segs: N (an int, or symbolic). The blocks stay one
    dimension, never (N, nb), and M >= 2: a symbolic size that can be 1 is
    specialised by torch.export at the export size (a size-1 dimension
    changes the traced strides), and the program then fails elsewhere.
    """
    idx: torch.Tensor
    cell: torch.Tensor
    block_seg: torch.Tensor
    first: torch.Tensor
    num_segs: int

    @classmethod
    def make(cls, L, opts: MCOptions, block: int, device) -> 'SegmentGrid':
        """``L``: an int or a symbolic size (never read as a Python int)."""
        t = torch.arange(L, device=device)
        if opts.segmentation == 'uniform':
            N = opts.num_segments
            torch._check(L >= N)  # fewer tokens: fewer segments (Python)
            # segment_lengths: ``rest`` segments of base + 1, then base
            base, rest = L // N, L % N
            n = torch.arange(N, device=device)
            start = n * base + torch.clamp(n, max=rest)
            length = base + (n < rest).long()
            cut = rest * (base + 1)
            seg = torch.where(t < cut, t // (base + 1),
                              rest + (t - cut).clamp(min=0) // base)
            # one segment: a spare block keeps M >= 2 (see above)
            nb = ((L + N - 1) // N + block - 1) // block + (N == 1)
        elif opts.segmentation == 'constant':
            C = opts.segment_size
            # blocks of at most half a segment: nb >= 2 (see above)
            block = min(block, (C + 1) // 2)
            # and a spare, empty last segment: N >= 2 (see above; no token
            # reads the last segment)
            N = (L + C - 1) // C + 1
            start = torch.arange(N, device=device) * C
            length = torch.clamp(L - start, max=C)
            seg = t // C
            nb = (C + block - 1) // block
        else:
            raise ValueError('the grid form serves constant and uniform '
                             f'segmentation, not {opts.segmentation!r}')
        m = torch.arange(N * nb, device=device)
        blk_seg = m // nb  # (M,)
        # each cell's place in its segment (M, b)
        pos = (m - blk_seg * nb)[:, None] * block + \
            torch.arange(block, device=device)
        idx = torch.where(pos < length[blk_seg, None],
                          start[blk_seg, None] + pos, L)
        cell = seg * (nb * block) + t - start[seg]
        return cls(idx, cell, blk_seg, blk_seg * nb, N)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, L, d) -> (B, H, M, b, d), zeros in padding cells."""
        return F.pad(x, (0, 0, 0, 1))[:, :, self.idx]

    def scatter(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, M, b, d) -> (B, H, L, d): each token's cell."""
        return x.flatten(2, 3)[:, :, self.cell]

    def seg_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Per block, the sum of the earlier blocks of its segment;
        x (B, H, M, ...). A difference of running sums (exact up to
        rounding: the grid has no (N, nb) view, see above)."""
        before = x.cumsum(2) - x
        return before - before[:, :, self.first]

    def seg_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Per segment, the sum of its blocks: (B, H, M, ...) ->
        (B, H, N, ...)."""
        member = self.block_seg[:, None] == torch.arange(
            self.num_segs, device=x.device)  # (M, N)
        flat = x.flatten(3).transpose(2, 3)  # (B, H, E, M)
        sums = (flat @ member.to(x.dtype)).transpose(2, 3)
        return sums.reshape(x.shape[:2] + (-1, ) + x.shape[3:])


def grid_memory_caching(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        u: Optional[torch.Tensor],
                        opts: MCOptions) -> torch.Tensor:
    """Causal MC, linear memory, one pass, over per-head q (scaled), k, v,
    u (B, H, L, d) (u None for residual); returns y (B, H, L, d)."""
    B, H, L, d = q.shape
    grid = SegmentGrid.make(L, opts, opts.block_size, q.device)
    Q, K, V = (grid.gather(x) for x in (q, k, v))  # (B, H, M, b, d)
    N = grid.num_segs

    # keys: each token's online sum (its segment up to it), each segment's
    ksum = K.sum(3)  # per block (B, H, M, d)
    online_keys = K.cumsum(3) + grid.seg_prefix(ksum)[:, :, :, None]
    seg_keys = grid.seg_sum(ksum)  # (B, H, N, d)

    # gates (B, H, M, b, N): a block of segment s reads cached n < s
    valid = (torch.arange(N, device=q.device) <
             grid.block_seg[:, None])[:, None]  # (M, 1, N)
    if opts.aggregation == 'residual':
        g = valid.to(q.dtype).expand(B, H, -1, Q.shape[3], -1)
        g_on = torch.ones_like(Q[..., 0])
    else:
        U = grid.gather(u)
        scores = U @ seg_keys[:, :, None].transpose(-1, -2)
        keep = valid
        if opts.aggregation == 'ssc' and N > opts.top_k:
            chosen = scores.masked_fill(~valid, float('-inf')).topk(
                opts.top_k, dim=-1).indices
            keep = torch.zeros_like(
                scores, dtype=torch.bool).scatter(-1, chosen, True) & valid
        scores = scores.masked_fill(~keep, float('-inf'))
        online = (U * online_keys).sum(-1, keepdim=True)
        gates = torch.softmax(torch.cat([scores, online], -1), -1)
        g, g_on = gates[..., :-1], gates[..., -1]
    if opts.segment_start == 'checkpoint':
        # cached state n is the sum of segment states j <= n, the online
        # memory adds every j < s: segment j's own state has this weight
        g = (g.flip(-1).cumsum(-1).flip(-1) + g_on[..., None]) * valid

    # states K^T V per block and per segment; the online read
    S_blk = K.transpose(-1, -2) @ V  # (B, H, M, d, d)
    seg_states = grid.seg_sum(S_blk)  # (B, H, N, d, d)
    b = Q.shape[3]
    causal = torch.ones(b, b, dtype=q.dtype, device=q.device).tril()
    online = ((Q @ K.transpose(-1, -2)) * causal) @ V + \
        Q @ grid.seg_prefix(S_blk)

    # the cached read: every token against every segment's state, weighted
    reads = Q.flatten(2, 3) @ seg_states.permute(0, 1, 3, 2, 4).flatten(3)
    reads = reads.reshape(Q.shape[:4] + (N, d))  # (B, H, M, b, N, d)
    cached = (g[..., None] * reads).sum(-2)
    return grid.scatter(g_on[..., None] * online + cached)
