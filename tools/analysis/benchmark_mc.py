"""Forward+backward time and memory of the Memory Caching layer against
the per-token reference loop of the same math and softmax attention.

At each sequence length, in one run, variants interleaved round by round
(drift of a shared machine hits them alike), all with the same width, heads
and q / k / v / output projections, causal:

- ``mc-<aggregation>``: :class:`MemoryCachingAttention` (linear memory,
  segments of ``--segment-size``), ``kernel='auto'`` (flash-linear-attention
  on CUDA where installed); ``--kernels auto torch`` adds
  ``mc-<aggregation>-torch``, the PyTorch path, beside it;
- ``sdpa``: softmax attention, ``F.scaled_dot_product_attention``;
- ``loop``: :func:`memory_caching_reference_layer` (a Python loop over
  tokens) at the lengths in ``--loop-lengths`` only, the median of
  ``--loop-iters`` runs (its time moves with the machine's state: it is
  bound by Python's per-op overhead, on one core whatever ``--threads``).

Memory: on CUDA the peak allocated during the step; on CPU the bytes of
tensors autograd saves for backward (torch keeps no CPU allocator
statistics). Then two scaling checks of the MC step (its cost model is
a + b N L): at a fixed length against the number of segments N, and at a
fixed N against the length (linear in L, where attention is quadratic).

Example::

    python tools/analysis/benchmark_mc.py --threads 1
    python tools/analysis/benchmark_mc.py --device cuda --kernels auto torch
"""
import argparse
import statistics
from collections import OrderedDict
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchmark_utils import (add_step_args, device_of, measure, setup_host,
                             timed)

from mmcached.models.layers.memory_caching import MemoryCachingAttention
from mmcached.models.layers.memory_caching.naive import \
    memory_caching_reference_layer


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dim', type=int, default=256)
    p.add_argument('--heads', type=int, default=4)
    p.add_argument(
        '--lengths',
        nargs='+',
        type=int,
        default=[256, 512, 1024, 2048, 4096, 8192, 16384])
    p.add_argument(
        '--loop-lengths',
        nargs='*',
        type=int,
        default=[2048],
        help='lengths at which the per-token loop is timed')
    p.add_argument('--loop-iters', type=int, default=3)
    p.add_argument('--aggregations', nargs='+', default=['grm'])
    p.add_argument(
        '--kernels',
        nargs='+',
        default=['auto'],
        choices=['auto', 'torch', 'fla'],
        help='MC kernel(s); the first is the one the ratios use')
    p.add_argument('--segment-size', type=int, default=256)
    p.add_argument(
        '--scaling-length',
        type=int,
        default=8192,
        metavar='L',
        help='length of the N sweep (0: skip it)')
    p.add_argument(
        '--fixed-segments',
        type=int,
        default=16,
        metavar='N',
        help='N of the L sweep at a fixed number of segments '
        '(0: skip it)')
    add_step_args(p, batch_size=1, iters=3, warmup=1)
    return p.parse_args()


class SoftmaxAttention(nn.Module):
    """Causal multi-head softmax attention with the MC layer's projection
    shapes."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads,
                                   -1).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(o.transpose(1, 2).reshape(B, L, D))


def make_step(module, x, fn=None):

    def step():
        y = module(x) if fn is None else fn(module, x)
        y.float().sum().backward()
        x.grad = None
        module.zero_grad(set_to_none=True)

    return step


def _mc(D, H, C, agg, device, kernel='auto'):
    kw = {'top_k': 2} if agg == 'ssc' else {}
    return MemoryCachingAttention(
        D, H, segment_size=C, aggregation=agg, kernel=kernel, **kw).to(device)


def main():
    args = parse_args()
    heap = setup_host(args)
    device = device_of(args.device)
    D, H = args.dim, args.heads
    torch.manual_seed(0)
    layers = OrderedDict()
    for agg in args.aggregations:
        for kernel in args.kernels:
            name = f'mc-{agg}' + ('' if kernel == 'auto' else f'-{kernel}')
            layers[name] = _mc(D, H, args.segment_size, agg, device, kernel)
    sdpa = SoftmaxAttention(D, H).to(device)
    mem_kind = 'peak MiB' if device.type == 'cuda' else 'saved MiB'
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' \
        else f'threads {torch.get_num_threads()}, {heap}'
    print(f'device {device} ({where}), torch {torch.__version__}, batch '
          f'{args.batch_size}, dim {D}, heads {H}, segments of '
          f'{args.segment_size}; forward+backward, median of {args.iters}')
    head = '| L | N | ' + ' | '.join(
        f'{n} s | {n} {mem_kind}' for n in list(layers) + ['sdpa']) + \
        ' | sdpa / mc | loop s | loop / mc |'
    rows = []
    for L in args.lengths:
        x = torch.randn(
            args.batch_size, L, D, device=device, requires_grad=True)
        res = measure(
            OrderedDict(layers, sdpa=sdpa), partial(make_step, x=x), device,
            args.iters, args.warmup)
        first = next(iter(layers))
        t_mc = res[first][0]
        cells = [f'{L}', f'{-(-L // args.segment_size)}']
        for n, (t, m) in res.items():
            cells += [f'{t:.4f}', f'{m / 2**20:.1f}']
        cells.append(f'{res["sdpa"][0] / t_mc:.2f}')
        if L in args.loop_lengths:
            loop = make_step(layers[first], x, memory_caching_reference_layer)
            t_loop = statistics.median(
                timed(loop, device) for _ in range(args.loop_iters))
            cells += [f'{t_loop:.2f}', f'{t_loop / t_mc:.0f}']
        else:
            cells += ['-', '-']
        rows.append('| ' + ' | '.join(cells) + ' |')
        print(rows[-1], flush=True)
    print('\n' + head)
    print('|---' * (head.count('|') - 1) + '|')
    print('\n'.join(rows))

    if args.scaling_length:
        L = args.scaling_length
        x = torch.randn(
            args.batch_size, L, D, device=device, requires_grad=True)
        print(f'\nScaling at L = {L}: {first} step time against the number '
              f'of segments N (time / N should settle to a constant)\n')
        print('| C | N | s | s / N | saved or peak MiB |')
        print('|---|---|---|---|---|')
        variants = OrderedDict()
        for C in (2048, 1024, 512, 256, 128, 64):
            if C > L:
                continue
            variants[C] = _mc(D, H, C, args.aggregations[0], device,
                              args.kernels[0])
        res = measure(variants, partial(make_step, x=x), device, args.iters,
                      args.warmup)
        for C, (t, m) in res.items():
            N = L // C
            print(f'| {C} | {N} | {t:.4f} | {t / N:.4f} | {m / 2**20:.1f} |')

    N = args.fixed_segments
    if N:
        print(f'\nScaling at N = {N} segments (C = L / N): {first} and sdpa '
              f'step time against L (MC / L should settle to a constant, '
              f'sdpa / L grows with L)\n')
        print('| L | C | mc s | mc ms per 1K tokens | sdpa s | '
              'sdpa ms per 1K tokens |')
        print('|---|---|---|---|---|---|')
        for L in args.lengths:
            if L < 4 * N:
                continue
            x = torch.randn(
                args.batch_size, L, D, device=device, requires_grad=True)
            m = _mc(D, H, L // N, args.aggregations[0], device,
                    args.kernels[0])
            res = measure(
                OrderedDict(mc=m, sdpa=sdpa), partial(make_step, x=x), device,
                args.iters, args.warmup)
            t, ts = res['mc'][0], res['sdpa'][0]
            print(
                f'| {L} | {L // N} | {t:.4f} | {1e3 * t / L * 1024:.1f} '
                f'| {ts:.4f} | {1e3 * ts / L * 1024:.1f} |',
                flush=True)


if __name__ == '__main__':
    main()
