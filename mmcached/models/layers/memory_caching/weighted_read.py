"""The cached read of Memory Caching as one autograd node.

y_t = sum_n g[t, n] x_t @ W_n over the cached states W_n of every token t:
the costliest part of MC (O(L N a b) per head). As plain ops it is one GEMM
against the stacked states, (g_t (x) x_t) @ [W_1; ..; W_N], but autograd
then keeps the (L, N * a) product tensor, which at L = 16K is gigabytes and
makes the step memory-bound. Here the rows are taken a block at a time,
only against the states they can read (token t reads n < its segment, so
row block r reads the first ``ncols[r]`` states; about half the work of the
dense product), and the backward recomputes each block's product instead of
saving it: memory O(L (a + N)) saved for backward.

:func:`weighted_read` runs the same blocks as plain ops
(:func:`weighted_read_plain`, the reference the tests compare the node
with) while tracing, so that mmengine's FLOP counter sees the matmuls.
"""
from typing import List, Sequence, Tuple

import torch

RowBlocks = Sequence[Tuple[int, int, int]]  # (row start, row end, columns)


def row_blocks(seg_lens: Sequence[int],
               first_seg: int,
               n_cached: int,
               min_rows: int = 256) -> List[Tuple[int, int, int]]:
    """Row blocks of at least ``min_rows`` tokens (whole segments), each with
    the number of cached states its tokens may read: tokens of (global)
    segment s read n < s. ``seg_lens``: the lengths of the rows' segments,
    the first of which is global segment ``first_seg``. Plain Python on the
    lengths, so that no device tensor is read back (a CUDA sync)."""
    if n_cached == 0:
        return []
    blocks, start, end = [], 0, 0
    for i, n in enumerate(seg_lens):
        end += n
        if end - start >= min_rows or i == len(seg_lens) - 1:
            ncols = min(first_seg + i, n_cached)
            if ncols > 0:
                blocks.append((start, end, ncols))
            start = end
    return blocks


def _block_product(x, g, r0, r1, n):
    """(g_t (x) x_t) for rows [r0, r1) against the first n states:
    (B, H, rows, n * a)."""
    return (g[:, :, r0:r1, :n, None] * x[:, :, r0:r1, None, :]).flatten(-2)


def weighted_read_plain(x, g, W, blocks: RowBlocks):
    """The cached read as plain ops, block by block (autograd saves each
    block's product)."""
    B, H, L, _ = x.shape
    parts, pos = [], 0
    for r0, r1, n in blocks:
        if r0 > pos:
            parts.append(x.new_zeros(B, H, r0 - pos, W.shape[-1]))
        parts.append(
            _block_product(x, g, r0, r1, n) @ W[:, :, :n].flatten(2, 3))
        pos = r1
    if pos < L:
        parts.append(x.new_zeros(B, H, L - pos, W.shape[-1]))
    return torch.cat(parts, 2)


class _WeightedRead(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, g, W, blocks):
        B, H, L, _ = x.shape
        y = x.new_zeros(B, H, L, W.shape[-1])
        for r0, r1, n in blocks:
            torch.matmul(
                _block_product(x, g, r0, r1, n),
                W[:, :, :n].flatten(2, 3),
                out=y[:, :, r0:r1])
        ctx.save_for_backward(x, g, W)
        ctx.blocks = blocks
        return y

    @staticmethod
    def backward(ctx, gy):
        x, g, W = ctx.saved_tensors
        a = x.shape[-1]
        gx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        gg = torch.zeros_like(g) if ctx.needs_input_grad[1] else None
        gW = torch.zeros_like(W) if ctx.needs_input_grad[2] else None
        for r0, r1, n in ctx.blocks:
            gy_r = gy[:, :, r0:r1]
            Wn = W[:, :, :n].flatten(2, 3)  # (B, H, n * a, b)
            if gW is not None:
                z = _block_product(x, g, r0, r1, n)
                gW[:, :, :n] += (z.transpose(-1, -2) @ gy_r).unflatten(
                    2, (n, a))
            if gx is not None or gg is not None:
                gz = (gy_r @ Wn.transpose(-1, -2)).unflatten(-1, (n, a))
                if gx is not None:
                    gx[:, :, r0:r1] = (gz * g[:, :, r0:r1, :n, None]).sum(-2)
                if gg is not None:
                    gg[:, :, r0:r1, :n] = (gz * x[:, :, r0:r1, None]).sum(-1)
        return gx, gg, gW, None


def weighted_read(x: torch.Tensor, g: torch.Tensor, W: torch.Tensor,
                  blocks: RowBlocks) -> torch.Tensor:
    """y_t = sum_n g[.., t, n] x_t @ W[.., n] for x (B, H, L, a),
    g (B, H, L, N), W (B, H, N, a, b); row blocks from :func:`row_blocks`
    (rows outside every block, and states beyond a block's column count,
    are not read: their g must be 0). Returns (B, H, L, b)."""
    if not blocks:
        return x.new_zeros(x.shape[:3] + W.shape[-1:])
    if torch.jit.is_tracing():
        return weighted_read_plain(x, g, W, blocks)
    return _WeightedRead.apply(x, g, W, tuple(blocks))
