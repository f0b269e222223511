"""Forward+backward time and memory of GRC attention, with and without the
cache, ours against the authors' released module.

Two benchmarks, each measured in one run (variants interleaved round by
round, so drift of a shared machine hits them alike), as ratios:

- ``layer``: one PVT stage-1-like attention layer (D=64, 1 head, sr 8, the
  token grid of stage 1 at ``--img-size``): uncached host attention; host +
  our GRC in each mode, on the fused path (the default, ``grc/fused.py``)
  and on the plain path (``, plain``); with ``--reference``, the released
  ``GRC_Self_Attention`` around its PVT ``Attention``, that host alone, and
  our GRC on that same host (same math as the released module). Training
  steps (forward + backward) and eval forwards (the frozen cache, no grad).
  The fused path is judged as a whole: the share of the layer's forward +
  backward time it saves against the plain path, in the same run.
- ``model``: training step and eval forward of a backbone against its
  uncached twin, in each mode (released also on the plain path), with the
  ratio the throughput would have if GRC ran at the backbone's FLOP rate:
  PVT-Tiny (mmdet's ``PyramidVisionTransformer`` against ``CachedPVT``)
  and Swin-T (``CachedSwin`` with and without caches), at 224 px or a
  detection-size input (``--model-sizes 224 800x1344:1``). With
  ``--compile`` also the uncached backbone and the cached one in the
  default mode (``released``) under ``torch.compile`` (the module compiled,
  as mmengine's ``compile=True`` compiles ``train_step``; the backward runs
  through the compiled graph), in the same rounds, with each one's time
  against its eager twin and the one-off compile (its first step, wall
  time). Under compile GRC takes the plain path (``grc/fused.py``).

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
    python tools/analysis/benchmark_grc.py --skip layer \
        --backbones pvt-tiny swin-t --model-sizes 224 800x1344:1 \
        --model-iters 3 --model-warmup 1
    python tools/analysis/benchmark_grc.py --skip layer --threads 1 \
        --model-sizes 224:2 --model-iters 5 --model-warmup 2 --compile \
        --clock cpu
"""
import argparse
import time
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchmark_utils import (add_step_args, device_of, measure, setup_host,
                             timed)

from mmcached.models.layers.grc.grc_attention import GRCAttention
from mmcached.models.layers.grc.switch import fused_grc


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
        '--backbones',
        nargs='+',
        default=['pvt-tiny'],
        choices=['pvt-tiny', 'swin-t'],
        help='backbones of the model benchmark')
    parser.add_argument(
        '--model-sizes',
        nargs='+',
        default=None,
        help='inputs of the model benchmark, SIZE or HxW, each with an '
        'optional :BATCH (default: --img-size at --model-batch-size), '
        'e.g. 224 800x1344:1')
    parser.add_argument(
        '--model-iters',
        type=int,
        default=None,
        help='rounds of the model benchmark (default: --iters)')
    parser.add_argument(
        '--model-warmup',
        type=int,
        default=None,
        help='warm-up steps of the model benchmark (default: --warmup)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='model benchmark: also the uncached and the cached backbone '
        '(default mode) under torch.compile, against their eager twins')
    parser.add_argument(
        '--clock',
        default='wall',
        choices=['wall', 'cpu'],
        help="'cpu': time steps by this process's CPU time "
        '(time.process_time), which other jobs on a shared machine disturb '
        'less than wall time; for single-threaded CPU runs only')
    parser.add_argument(
        '--skip',
        nargs='*',
        default=[],
        choices=['layer', 'model', 'eval'],
        help="'eval' skips the eval forwards")
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


class OnPath(nn.Module):
    """A module run with the GRC fused path switched on or off."""

    def __init__(self, module, fused):
        super().__init__()
        self.module, self.fused = module, fused

    def forward(self, *args):
        with fused_grc(self.fused):
            return self.module(*args)


class Released(nn.Module):

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x, hw):
        return self.module(x, H=hw[0], W=hw[1])


def report(title, results, baseline, batch, extra_ratios=(), memory=True):
    mem_kind = 'peak MiB' if _DEVICE.type == 'cuda' else \
        'saved-for-backward MiB'
    t0, m0 = results[baseline]
    print(f'\n### {title}\n')
    head = f'| variant | ms / step | img/s | time vs {baseline} |'
    if memory:
        head += f' {mem_kind} | mem vs {baseline} |'
    print(head)
    print('|---' * (6 if memory else 4) + '|')
    for name, (t, m) in results.items():
        row = f'| {name} | {t * 1e3:.1f} | {batch / t:.1f} | {t / t0:.3f} |'
        if memory:
            row += f' {m / 2**20:.1f} | {m / max(m0, 1):.3f} |'
        print(row)
    for text, num, den in extra_ratios:
        if num in results and den in results:
            print(f'- {text}: {results[den][0] / results[num][0]:.2f}x')


def report_fused(results, pairs, what):
    """The fused path judged as a whole: the share of the plain path's time
    it saves, per (fused, plain) pair of variants."""
    for fused, plain in pairs:
        if fused in results and plain in results:
            tf, tp = results[fused][0], results[plain][0]
            print(f'- fused path, {fused}: {tp / tf:.2f}x the plain path, '
                  f'saves {1 - tf / tp:.1%} of its {what} time (kept if '
                  '>= 10%)')


_COMPILED = ', compiled'


def compile_variants(variants, make_step):
    """Run each compiled variant's step once, which compiles it; the wall
    seconds of that first step, per variant."""
    return OrderedDict((k, timed(make_step(m), _DEVICE))
                       for k, m in variants.items() if k.endswith(_COMPILED))


def report_compiled(results, compile_s, what):
    """torch.compile judged per variant: its time against its eager twin's
    in the same rounds (and the plain path's, which GRC takes when
    compiled, where the run has it), and the one-off compile."""
    for name, seconds in compile_s.items():
        eager = name[:-len(_COMPILED)]
        vs = ', '.join(f'{results[name][0] / results[e][0]:.3f} of {e}'
                       for e in (eager, f'{eager}, plain') if e in results)
        print(f'- {name}: {what} time {vs}; compiling took {seconds:.1f} s '
              f'(its first {what}, wall time)')


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
        m = HostWithGRC(SRAttention(dim, heads, sr), grc(mode))
        variants[f'ours {mode}'] = OnPath(m, True)
        variants[f'ours {mode}, plain'] = OnPath(m, False)
    pairs = [('ours released', 'ours released, plain'),
             ('ours paper', 'ours paper, plain')]
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
        m = HostWithGRC(
            pvt_mod.Attention(dim, **kw), grc('released'), released_host=True)
        variants['ours released, released host'] = OnPath(m, True)
        variants['ours released, released host, plain'] = OnPath(m, False)
        pairs.append(('ours released, released host',
                      'ours released, released host, plain'))
    for m in variants.values():
        m.to(device).train()
    x = torch.randn(B, n, dim, device=device)

    def make_step(m):

        def step():
            xi = x.clone().requires_grad_(True)
            m(xi, hw).sum().backward()
            m.zero_grad(set_to_none=True)

        return step

    res = measure(variants, make_step, device, args.iters, args.warmup, _CLOCK)
    extra = [
        ('ours released vs released (whole layer)', 'ours released',
         'released'),
        ('ours vs released on the same (released) host',
         'ours released, released host', 'released'),
        ('ours vs released on the same (released) host, plain path',
         'ours released, released host, plain', 'released'),
    ]
    report('one layer, forward + backward', res, 'uncached', B, extra)
    report_fused(res, pairs, 'forward + backward')
    if 'released' in res:
        host = res['released host only'][0]
        r_over = res['released'][0] - host
        for name in ('ours released, released host',
                     'ours released, released host, plain'):
            o_over = res[name][0] - host
            print(f'- GRC part alone (layer minus its host), {name}: '
                  f'released {r_over * 1e3:.1f} ms, ours '
                  f'{o_over * 1e3:.1f} ms, {r_over / max(o_over, 1e-9):.2f}x')
    if 'eval' in args.skip:
        return
    # eval: the frozen cache, no grad (the update is applied per sample and
    # not written back)
    for m in variants.values():
        m.eval()

    def make_eval(m):

        def step():
            with torch.no_grad():
                m(x, hw)

        return step

    res = measure(variants, make_eval, device, args.iters, args.warmup, _CLOCK)
    report(
        'one layer, eval forward (frozen cache)',
        res,
        'uncached',
        B, [('ours vs released on the same (released) host',
             'ours released, released host', 'released'),
            ('ours vs released on the same (released) host, plain path',
             'ours released, released host, plain', 'released')],
        memory=False)
    report_fused(res, pairs, 'eval forward')


def _parse_size(text, default_batch):
    size, _, batch = text.partition(':')
    h, _, w = size.lower().partition('x')
    return (int(h), int(w or h)), int(batch) if batch else default_batch


def _backbones(name, img_size):
    """(uncached twin, {mode: cached}) of a backbone, pretrained at
    ``img_size`` (the caches' grid)."""
    from mmcached.registry import MODELS
    if name == 'pvt-tiny':
        tiny = dict(
            embed_dims=64,
            num_heads=[1, 2, 5, 8],
            num_layers=[2, 2, 2, 2],
            pretrain_img_size=img_size,
            init_cfg=None)
        base = MODELS.build(
            dict(type='mmdet.PyramidVisionTransformer', **tiny))
        cached = {
            mode: MODELS.build(
                dict(
                    type='mmcached.CachedPVT',
                    arch='tiny',
                    pretrain_img_size=img_size,
                    cache_cfg=dict(mode=mode),
                    init_cfg=None))
            for mode in ('released', 'paper')
        }
        return 'PVT-Tiny', base, cached
    swin = dict(
        type='mmcached.CachedSwin',
        arch='tiny',
        pretrain_img_size=img_size,
        drop_path_rate=0.,
        init_cfg=None)
    base = MODELS.build(dict(swin, cached_stages=[]))
    cached = {
        mode: MODELS.build(dict(swin, cache_cfg=dict(mode=mode)))
        for mode in ('released', 'paper')
    }
    return 'Swin-T', base, cached


def model_benchmark(args, device):
    from mmengine.registry import init_default_scope

    import mmcached  # noqa: F401  registers the cached backbones
    init_default_scope('mmdet')
    default_batch = args.model_batch_size or args.batch_size
    sizes = [
        _parse_size(t, default_batch)
        for t in (args.model_sizes or [str(args.img_size)])
    ]
    iters = args.model_iters or args.iters
    warmup = args.warmup if args.model_warmup is None else args.model_warmup
    for backbone in args.backbones:
        for (h, w), B in sizes:
            _model_benchmark(args, device, backbone, (h, w), B, iters, warmup)


def _model_benchmark(args, device, backbone, hw, B, iters, warmup):
    name, base, cached = _backbones(backbone, args.img_size)
    variants = OrderedDict()  # name -> model
    variants[name] = base
    for mode, m in cached.items():
        variants[f'Cached{name} {mode}'] = OnPath(m, True)
        if mode == 'released':
            variants[f'Cached{name} {mode}, plain'] = OnPath(m, False)
    if args.compile:  # the modules themselves, as mmengine compiles them
        variants[name + _COMPILED] = torch.compile(base)
        variants[f'Cached{name} released{_COMPILED}'] = torch.compile(
            cached['released'])
    size = f'{hw[0]}x{hw[1]}'
    print(f'\nmodel: {name}, B={B}, {size} px (caches pretrained at '
          f'{args.img_size} px), training step and eval forward, {iters} '
          f'rounds after {warmup} warm-up steps')
    for m in variants.values():
        m.to(device).train()
    x = torch.randn(B, 3, *hw, device=device)

    def make_step(m):

        def step():
            outs = m(x)
            sum(o.float().mean() for o in outs).backward()
            m.zero_grad(set_to_none=True)

        return step

    flops = {
        k: _gflops(m, hw, device)
        for k, m in variants.items() if not k.endswith((', plain', _COMPILED))
    }
    compile_s = compile_variants(variants, make_step)
    res = measure(variants, make_step, device, iters, warmup, _CLOCK)
    report(f'{name} training step at {size} (forward + backward)', res, name,
           B)
    _throughput_ratios(res, flops, name, 'training', '0.82')
    report_fused(res,
                 [(f'Cached{name} released', f'Cached{name} released, plain')],
                 'training step')
    report_compiled(res, compile_s, 'training step')
    if 'eval' in args.skip:
        return
    for m in variants.values():
        m.eval()

    def make_eval(m):

        def step():
            with torch.no_grad():
                m(x)

        return step

    compile_s = compile_variants(variants, make_eval)
    res = measure(variants, make_eval, device, iters, warmup, _CLOCK)
    report(
        f'{name} eval forward at {size} (frozen caches)',
        res,
        name,
        B,
        memory=False)
    _throughput_ratios(res, flops, name, 'eval', '0.83')
    report_fused(res,
                 [(f'Cached{name} released', f'Cached{name} released, plain')],
                 'eval forward')
    report_compiled(res, compile_s, 'eval forward')


def _throughput_ratios(res, flops, base_name, what, paper):
    base = res[base_name][0]
    for name, (t, _) in res.items():
        if name == base_name or name not in flops:
            continue
        parity = flops[base_name] / flops[name]
        if what == 'training':
            print(f'- {name} / {base_name} training throughput: '
                  f'{base / t:.3f} (paper {paper} on V100 for PVT); at equal '
                  f'FLOP rates it would be {parity:.3f} '
                  f'({flops[base_name]:.2f} / {flops[name]:.2f} GFLOPs per '
                  'image): the cached model runs at '
                  f'{base / t / parity:.0%} of the uncached one\'s FLOP rate')
        else:
            print(f'- {name} / {base_name} {what} throughput: {base / t:.3f} '
                  f'(paper {paper} on V100 for PVT); FLOP parity '
                  f'{parity:.3f}, {base / t / parity:.0%} of it')


def _gflops(model, hw, device):
    """Forward GFLOPs (multiply-adds, SDPA counted) of one image, in eval
    mode, which leaves the caches as they are."""
    from mmcached.utils.flops import get_model_complexity_info
    was_training = model.training
    model.eval()
    try:
        res = get_model_complexity_info(
            model,
            inputs=(torch.randn(1, 3, *hw, device=device), ),
            show_table=False,
            show_arch=False)
    finally:
        model.train(was_training)
    return res['flops'] / 1e9


_DEVICE = torch.device('cpu')
_CLOCK = time.perf_counter


def main():
    global _DEVICE, _CLOCK
    args = parse_args()
    heap = setup_host(args)
    if args.clock == 'cpu':
        if args.device != 'cpu' or torch.get_num_threads() != 1:
            raise SystemExit('--clock cpu: for --device cpu with one thread '
                             '(--threads 1) only')
        _CLOCK = time.process_time
    _DEVICE = device = device_of(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' \
        else f'CPU, {torch.get_num_threads()} threads'
    clock = 'CPU time of this process' if args.clock == 'cpu' else \
        'wall time'
    print(f'torch {torch.__version__}, device: {name}, {heap}, iters '
          f'{args.iters}, warmup {args.warmup} (median ms, {clock})')
    torch.manual_seed(0)
    if 'layer' not in args.skip:
        layer_benchmark(args, device)
    if 'model' not in args.skip:
        model_benchmark(args, device)


if __name__ == '__main__':
    main()
