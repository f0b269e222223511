"""Forward+backward time and memory of GRC attention, with and without the
cache, ours against the authors' released module.

Two benchmarks, each measured in one run (variants interleaved round by
round, so drift of a shared machine hits them alike), as ratios:

- ``layer``: one PVT stage-1-like attention layer (D=64, 1 head, sr 8, the
  token grid of stage 1 at ``--img-size``): uncached host attention; host +
  our GRC in each mode; with ``--reference``, the released
  ``GRC_Self_Attention`` around its PVT ``Attention``, that host alone, and
  our GRC on that same host (same math as the released module).
- ``model``: PVT-Tiny training step, mmdet's ``PyramidVisionTransformer``
  against mmcached's ``CachedPVT`` (registry) in each mode, with the ratio
  the throughput would have if GRC ran at the backbone's FLOP rate.

On CPU, glibc returns large freed blocks to the system, so every step
page-faults its activations in again, more so for code that allocates more;
``--keep-heap`` measures without that (as the CUDA caching allocator does).
Both are worth reading: the ratios differ.

Memory: on CUDA the peak allocated during the step; on CPU, where torch keeps
no allocator statistics, the bytes of tensors autograd saves for backward
(the activation memory of training).

Example::

    python tools/analysis/benchmark_grc.py --reference /path/to/GRC-Cache \
        --batch-size 8 --img-size 224 --iters 10 --warmup 3
"""
import argparse
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchmark_utils import add_step_args, device_of, measure, setup_host

from mmcached.models.layers.grc.grc_attention import GRCAttention


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--reference',
        help='released GRC-Cache repo (root, '
        'core/ or bare git dir); adds the released module')
    add_step_args(parser, batch_size=8, iters=10, warmup=3)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument(
        '--model-batch-size',
        type=int,
        default=None,
        help='batch of the PVT-Tiny benchmark (default: '
        '--batch-size)')
    parser.add_argument(
        '--skip', nargs='*', default=[], choices=['layer', 'model'])
    return parser.parse_args()


class SRAttention(nn.Module):
    """PVT's spatial-reduction attention (SDPA); returns the output after
    its projection, i.e. ``o_self`` for GRC. x: (B, N, D) on ``hw``."""

    def __init__(self, dim, heads, sr_ratio, qkv_bias=True):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x, hw):
        B, N, D = x.shape
        h = self.heads
        q = self.q(x).view(B, N, h, -1).transpose(1, 2)
        kv_in = x
        if self.sr_ratio > 1:
            kv_in = self.sr(x.transpose(1, 2).reshape(B, D, *hw))
            kv_in = self.norm(kv_in.flatten(2).transpose(1, 2))
        k, v = self.kv(kv_in).view(B, -1, 2, h, D // h).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(B, N, D))


class HostOnly(nn.Module):

    def __init__(self, host, released_host=False):
        super().__init__()
        self.host, self.released_host = host, released_host

    def forward(self, x, hw):
        if self.released_host:
            return self.host(x, kv=x, H=hw[0], W=hw[1])
        return self.host(x, hw)


class HostWithGRC(HostOnly):

    def __init__(self, host, grc, released_host=False):
        super().__init__(host, released_host)
        self.grc = grc

    def forward(self, x, hw):
        return self.grc(x, super().forward(x, hw), hw)


class Released(nn.Module):

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x, hw):
        return self.module(x, H=hw[0], W=hw[1])


def report(title, results, baseline, batch, extra_ratios=()):
    mem_kind = 'peak MiB' if _DEVICE.type == 'cuda' else \
        'saved-for-backward MiB'
    t0, m0 = results[baseline]
    print(f'\n### {title}\n')
    print(f'| variant | ms / step | img/s | time vs {baseline} | '
          f'{mem_kind} | mem vs {baseline} |')
    print('|---|---|---|---|---|---|')
    for name, (t, m) in results.items():
        print(f'| {name} | {t * 1e3:.1f} | {batch / t:.1f} | {t / t0:.3f} | '
              f'{m / 2**20:.1f} | {m / max(m0, 1):.3f} |')
    for text, num, den in extra_ratios:
        if num in results and den in results:
            print(f'- {text}: {results[den][0] / results[num][0]:.2f}x')


def layer_benchmark(args, device):
    side = args.img_size // 4
    hw, n, dim, heads, sr = (side, side), side * side, 64, 1, 8
    B = args.batch_size
    print(f'\nlayer: B={B} N={n} ({side}x{side}) D={dim} heads={heads} '
          f'sr={sr}, cache_len={n} on its grid')

    def grc(mode):
        return GRCAttention(dim, heads, cache_len=hw, mode=mode, sr_ratio=sr)

    variants = OrderedDict()  # name -> module
    variants['uncached'] = HostOnly(SRAttention(dim, heads, sr))
    for mode in ('released', 'paper'):
        variants[f'ours {mode}'] = HostWithGRC(
            SRAttention(dim, heads, sr), grc(mode))
    if args.reference:
        from released_loader import load_released
        grc_mod, pvt_mod = load_released(args.reference)
        kw = dict(num_heads=heads, qkv_bias=True, sr_ratio=sr)
        variants['released host only'] = HostOnly(
            pvt_mod.Attention(dim, **kw), released_host=True)
        variants['released'] = Released(
            grc_mod.GRC_Self_Attention(
                dim,
                attention_func=pvt_mod.Attention,
                cache_ratio=0.5,
                cls_dim=0,
                **kw))
        variants['ours released, released host'] = HostWithGRC(
            pvt_mod.Attention(dim, **kw), grc('released'), released_host=True)
    for m in variants.values():
        m.to(device).train()
    x = torch.randn(B, n, dim, device=device)

    def make_step(m):

        def step():
            xi = x.clone().requires_grad_(True)
            m(xi, hw).sum().backward()
            m.zero_grad(set_to_none=True)

        return step

    res = measure(variants, make_step, device, args.iters, args.warmup)
    extra = [
        ('ours released vs released (whole layer)', 'ours released',
         'released'),
        ('ours vs released on the same (released) host',
         'ours released, released host', 'released'),
    ]
    report('one layer, forward + backward', res, 'uncached', B, extra)
    if 'released' in res:
        host = res['released host only'][0]
        r_over = res['released'][0] - host
        o_over = res['ours released, released host'][0] - host
        print(f'- GRC part alone (layer minus its host): released '
              f'{r_over * 1e3:.1f} ms, ours {o_over * 1e3:.1f} ms, '
              f'{r_over / max(o_over, 1e-9):.2f}x')


def model_benchmark(args, device):
    from mmengine.registry import init_default_scope

    import mmcached  # noqa: F401  registers CachedPVT
    from mmcached.registry import MODELS
    init_default_scope('mmdet')
    B = args.model_batch_size or args.batch_size
    tiny = dict(
        embed_dims=64,
        num_heads=[1, 2, 5, 8],
        num_layers=[2, 2, 2, 2],
        pretrain_img_size=args.img_size,
        init_cfg=None)
    variants = OrderedDict()  # name -> model
    variants['PVT-Tiny'] = MODELS.build(
        dict(type='mmdet.PyramidVisionTransformer', **tiny))
    for mode in ('released', 'paper'):
        m = MODELS.build(
            dict(
                type='mmcached.CachedPVT',
                arch='tiny',
                pretrain_img_size=args.img_size,
                cache_cfg=dict(mode=mode),
                init_cfg=None))
        variants[f'CachedPVT-Tiny {mode}'] = m
    print(f'\nmodel: PVT-Tiny, B={B}, {args.img_size}px, training step')
    for m in variants.values():
        m.to(device).train()
    x = torch.randn(B, 3, args.img_size, args.img_size, device=device)

    def make_step(m):

        def step():
            outs = m(x)
            sum(o.float().mean() for o in outs).backward()
            m.zero_grad(set_to_none=True)

        return step

    flops = {
        name: _gflops(m, args.img_size, device)
        for name, m in variants.items()
    }
    res = measure(variants, make_step, device, args.iters, args.warmup)
    report('PVT-Tiny training step (forward + backward)', res, 'PVT-Tiny', B)
    base = res['PVT-Tiny'][0]
    for name, (t, _) in res.items():
        if name != 'PVT-Tiny':
            parity = flops['PVT-Tiny'] / flops[name]
            print(f'- {name} / PVT-Tiny training throughput: {base / t:.3f} '
                  '(target >= 0.85; paper 0.82 on V100); at equal FLOP '
                  f'rates it would be {parity:.3f} ({flops["PVT-Tiny"]:.2f} '
                  f'/ {flops[name]:.2f} GFLOPs per image): the cached '
                  f'model runs at {base / t / parity:.0%} of the uncached '
                  'one\'s FLOP rate')


def _gflops(model, img_size, device):
    """Forward GFLOPs (multiply-adds, SDPA counted) of one image, in eval
    mode, which leaves the caches as they are."""
    from mmcached.utils.flops import get_model_complexity_info
    was_training = model.training
    model.eval()
    try:
        res = get_model_complexity_info(
            model,
            inputs=(torch.randn(1, 3, img_size, img_size, device=device), ),
            show_table=False,
            show_arch=False)
    finally:
        model.train(was_training)
    return res['flops'] / 1e9


_DEVICE = torch.device('cpu')


def main():
    global _DEVICE
    args = parse_args()
    heap = setup_host(args)
    _DEVICE = device = device_of(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' \
        else f'CPU, {torch.get_num_threads()} threads'
    print(f'torch {torch.__version__}, device: {name}, {heap}, iters '
          f'{args.iters}, warmup {args.warmup} (median ms)')
    torch.manual_seed(0)
    if 'layer' not in args.skip:
        layer_benchmark(args, device)
    if 'model' not in args.skip:
        model_benchmark(args, device)


if __name__ == '__main__':
    main()
