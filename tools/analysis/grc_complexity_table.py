"""Params and FLOPs of every cached backbone and its baseline next to the
paper's Table 1, as a Markdown table with the gap in %.

Models are built through the registries by name (``mmdet.*`` /
``mmpretrain.*`` baselines, ``mmcached.*`` cached ones) with their arch
arguments, topped with an ImageNet head (global pooling + Linear to 1000
classes, as the paper's classifiers are counted). FLOPs come from mmengine's
analyzer with scaled-dot-product attention counted
(:mod:`mmcached.utils.flops`); like mmengine, one multiply-add is one FLOP.

Example::

    python tools/analysis/grc_complexity_table.py --img-size 224
    python tools/analysis/grc_complexity_table.py --models PVT-Tiny \
        --cache-ratio 0.25
    python tools/analysis/grc_complexity_table.py --plot docs/complexity.png
"""
import argparse
from collections import OrderedDict

import torch
import torch.nn as nn

_VIT = 'mmpretrain.VisionTransformer'
_PVT = 'mmdet.PyramidVisionTransformer'
_PVTV2 = 'mmdet.PyramidVisionTransformerV2'
_SWIN_T = dict(
    type='mmdet.SwinTransformer',
    embed_dims=96,
    depths=[2, 2, 6, 2],
    num_heads=[3, 6, 12, 24])
# name -> baseline cfg
_BASELINES = {
    'ViT-S (DeiT-S)': dict(type=_VIT, arch='deit-small'),
    'PVT-Tiny': dict(type=_PVT, num_layers=[2, 2, 2, 2]),
    'PVT-Small': dict(type=_PVT, num_layers=[3, 4, 6, 3]),
    'PVT-Medium': dict(type=_PVT, num_layers=[3, 4, 18, 3]),
    'Swin-T': _SWIN_T,
    'PVTv2-B2': dict(type=_PVTV2, embed_dims=64, num_layers=[3, 4, 6, 3]),
    'PVTv2-B3': dict(type=_PVTV2, embed_dims=64, num_layers=[3, 4, 18, 3]),
    'PVTv2-B4': dict(type=_PVTV2, embed_dims=64, num_layers=[3, 8, 27, 3]),
}
# name -> the cached backbone (mmcached.Cached<backbone>) and its arch
_CACHED = {
    'ViT-S (DeiT-S)': ('ViT', 'deit-small'),
    'PVT-Tiny': ('PVT', 'tiny'),
    'PVT-Small': ('PVT', 'small'),
    'PVT-Medium': ('PVT', 'medium'),
    'Swin-T': ('Swin', 'tiny'),
    'PVTv2-B2': ('PVTv2', 'b2'),
    'PVTv2-B3': ('PVTv2', 'b3'),
    'PVTv2-B4': ('PVTv2', 'b4'),
}
# name -> the paper's (params M, GFLOPs) of the baseline, of the cached model
_PAPER = {
    'ViT-S (DeiT-S)': ((22.1, 4.60), (25.5, 5.13)),
    'PVT-Tiny': ((13.3, 1.90), (15.0, 2.15)),
    'PVT-Small': ((24.5, 3.80), (28.3, 4.29)),
    'PVT-Medium': ((44.2, 6.70), (51.4, 7.61)),
    'Swin-T': ((28.0, 4.50), (32.8, 5.15)),
    'PVTv2-B2': ((25.4, 4.00), (29.1, 4.51)),
    'PVTv2-B3': ((45.2, 6.90), (52.5, 7.81)),
    'PVTv2-B4': ((62.6, 10.10), (72.5, 11.57)),
}


def _models_spec():
    """name -> (baseline cfg, cached cfg, paper (params M, GFLOPs) base /
    cached)."""
    spec = OrderedDict()
    for name, base in _BASELINES.items():
        backbone, arch = _CACHED[name]
        cached = dict(type='mmcached.Cached' + backbone, arch=arch)
        spec[name] = (base, cached) + _PAPER[name]
    return spec


MODELS_SPEC = _models_spec()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--models',
        nargs='*',
        default=None,
        help=f'subset of: {", ".join(MODELS_SPEC)}')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument(
        '--mode', default='released', choices=['released', 'paper'])
    parser.add_argument('--cache-ratio', type=float, default=0.5)
    parser.add_argument(
        '--plot',
        metavar='PNG',
        help='also draw the table: GFLOPs against params, ours beside the '
        "paper's")
    return parser.parse_args()


class WithHead(nn.Module):
    """Backbone + global average pooling + Linear classifier.

    The last backbone output may be (B, C, H, W) or (B, C) (ViT class
    token); the head's input width is found with one dry run."""

    def __init__(self, backbone, num_classes, img_size):
        super().__init__()
        self.backbone = backbone
        with torch.no_grad():
            feat = self._feature(torch.zeros(1, 3, img_size, img_size))
        self.head = nn.Linear(feat.shape[1], num_classes)

    def _feature(self, x):
        feat = self.backbone(x)
        if isinstance(feat, (tuple, list)):
            feat = feat[-1]
        return feat.flatten(2).mean(-1) if feat.dim() > 2 else feat

    def forward(self, x):
        return self.head(self._feature(x))


def build(cfg, img_size):
    from mmcached.registry import MODELS
    cfg = dict(cfg, init_cfg=None)
    name = cfg['type'].split('.')[-1]
    if name == 'VisionTransformer' or name == 'CachedViT':
        cfg['img_size'] = img_size
    else:
        cfg['pretrain_img_size'] = img_size
    if name in ('VisionTransformer', 'CachedViT'):
        # one feature: the class token of the last layer
        cfg.setdefault('out_type', 'cls_token')
    else:
        cfg.setdefault('out_indices', (3, ))
    return MODELS.build(cfg)


def complexity(model, img_size):
    from mmcached.utils.flops import get_model_complexity_info
    model.eval()
    res = get_model_complexity_info(
        model,
        input_shape=(3, img_size, img_size),
        show_table=False,
        show_arch=False)
    return res['params'] / 1e6, res['flops'] / 1e9


def gap(ours, paper):
    return f'{100 * (ours - paper) / paper:+.1f}%'


def plot(points, path, title):
    """GFLOPs against params (M), one colour per model: ours filled, the
    paper's hollow, the baseline (circle) joined to its cached model
    (triangle). ``points``: name -> {(source, variant): (params, flops)}
    with source 'ours' / 'paper' and variant 'baseline' / 'cached'."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    fig, ax = plt.subplots(figsize=(7.5, 5.5), layout='constrained')
    for i, (name, pts) in enumerate(points.items()):
        color = f'C{i % 10}'
        for source, style, face in (('ours', '-', color), ('paper', ':',
                                                           'none')):
            pair = [pts.get((source, v)) for v in ('baseline', 'cached')]
            if None not in pair:
                ax.plot(*zip(*pair), style, color=color, lw=1)
            for (x, y), marker in zip([p for p in pair if p is not None],
                                      'o^'):
                ax.plot(x, y, marker, color=color, mfc=face, ms=7)
        x, y = pts.get(('ours', 'cached'), pts.get(('paper', 'cached')))
        # alternate above / below: neighbouring models overlap otherwise
        ax.annotate(
            name, (x, y),
            xytext=(4, 4 if i % 2 else -12),
            textcoords='offset points',
            fontsize=8,
            color=color)
    ax.set_xlabel('params (M)')
    ax.set_ylabel('GFLOPs (multiply-adds)')
    ax.set_title(title)
    ax.grid(alpha=.3)
    ax.legend(
        handles=[
            Line2D([], [],
                   marker='o',
                   color='k',
                   ls='-',
                   label='ours: '
                   'baseline -> cached (triangle)'),
            Line2D([], [],
                   marker='o',
                   color='k',
                   mfc='none',
                   ls=':',
                   label="paper's Table 1")
        ],
        loc='upper left')
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    args = parse_args()
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    import mmcached  # noqa: F401  registers the cached backbones
    init_default_scope('mmcached')
    # the analyzer warns about every op it skips; keep the table readable
    MMLogger.get_current_instance().setLevel('ERROR')
    names = args.models or list(MODELS_SPEC)
    print(f'{args.img_size} px, {args.num_classes}-class head, GRC mode '
          f'{args.mode!r}, cache ratio {args.cache_ratio}; FLOPs as '
          f'mmengine counts them (MACs) with SDPA counted\n')
    print('| model | variant | params (M) | paper | gap | GFLOPs | paper | '
          'gap |')
    print('|---|---|---|---|---|---|---|---|')
    points = OrderedDict()
    for name in names:
        base_cfg, cached_cfg, paper_base, paper_cached = MODELS_SPEC[name]
        points[name] = {
            ('paper', 'baseline'): paper_base,
            ('paper', 'cached'): paper_cached
        }
        cached_cfg = dict(
            cached_cfg,
            cache_cfg=dict(mode=args.mode, cache_ratio=args.cache_ratio))
        rows = []
        for variant, cfg, paper in (('baseline', base_cfg, paper_base),
                                    ('cached', cached_cfg, paper_cached)):
            try:
                model = WithHead(
                    build(cfg, args.img_size), args.num_classes, args.img_size)
                params, flops = complexity(model, args.img_size)
            except Exception as e:  # report and go on with the others
                print(f'| {name} | {variant} | error: {type(e).__name__}: '
                      f'{e} | | | | | |')
                continue
            rows.append((params, flops))
            points[name][('ours', variant)] = (params, flops)
            print(
                f'| {name} | {variant} | {params:.2f} | {paper[0]:.1f} | '
                f'{gap(params, paper[0])} | {flops:.2f} | {paper[1]:.2f} | '
                f'{gap(flops, paper[1])} |',
                flush=True)
        if len(rows) == 2:
            dp, df = rows[1][0] - rows[0][0], rows[1][1] - rows[0][1]
            pp = paper_cached[0] - paper_base[0]
            pf = paper_cached[1] - paper_base[1]
            print(
                f'| {name} | cache adds | {dp:+.2f} | {pp:+.1f} | '
                f'{gap(dp, pp)} | {df:+.2f} | {pf:+.2f} | {gap(df, pf)} |',
                flush=True)
    if args.plot:
        print('\n' + plot(
            points, args.plot, f'Params and FLOPs at {args.img_size} px, '
            f'GRC {args.mode}, cache ratio {args.cache_ratio}'))


if __name__ == '__main__':
    main()
