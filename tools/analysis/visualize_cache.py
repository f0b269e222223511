"""Pictures of what the caches of a trained cached model do, as PNG files.

From any cached checkpoint (classification or detection config):

- ``mix_weights.png``: sigma(lam) of every head of every GRC layer as a
  heatmap (layers x heads) and its per-layer mean, like the paper's Fig. 5
  (how much each layer relies on its cache);
- ``attention_outputs.png``: for one image, the self-attention and the
  cache-attention outputs of chosen GRC layers side by side (mean over heads
  and channels per token, normalised to [0, 1], on the token grid), like
  the paper's Fig. 6;
- ``cache_pca.png``: each chosen GRC layer's stored cache, its first three
  principal components over the cache's token grid as RGB;
- ``mc_gates.png``: for Memory Caching layers, the gate weight each token
  gives each segment, for the image.

The image is ``--img`` (a file, through the config's test pipeline) or the
first image of the config's test set.

Example::

    python tools/analysis/visualize_cache.py \
        configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py \
        work_dirs/cached-vit-mini-p8_1xb64-40e_digits/epoch_40.pth \
        --out-dir work_dirs/cache_vis
"""
import argparse
import os
import os.path as osp

import numpy as np
import torch
from mmengine.config import DictAction

from mmcached.analysis import CacheRecorder, named_cache_layers
from mmcached.models.layers import GRCAttention, MemoryCachingAttention
from mmcached.models.layers.grc import cache_pca
from mmcached.utils.cli import CLIError, load_config, main_guard
from mmcached.utils.runner_model import build_runner_model

DPI = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'config', help='the config the checkpoint was '
        'trained with')
    parser.add_argument('checkpoint')
    parser.add_argument(
        '--img', help='image file (default: the first image of the test set)')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument(
        '--layers',
        nargs='+',
        help='cache layers for the per-image figures, by name (e.g. layer3, '
        'stage2.layer1; default: up to 4, evenly spaced)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        metavar='KEY=VALUE',
        help='override config settings')
    return parser.parse_args(argv)


# ------------------------------------------------------------ model, image
def build_model(cfg, checkpoint):
    """The config's model, in eval mode, with the checkpoint's weights;
    refuses a config without cache layers and a checkpoint without their
    weights (an uncached model's)."""
    from mmengine.runner.checkpoint import (_load_checkpoint,
                                            _load_checkpoint_to_model)
    model = build_runner_model(cfg)
    paths = {id(m): p for p, m in model.named_modules()}
    layers = named_cache_layers(model)
    if not layers:
        raise CLIError('the config builds no cache layer (an uncached '
                       'config?); give the cached config the checkpoint was '
                       'trained with')
    if not osp.isfile(checkpoint):
        raise CLIError(f'checkpoint {checkpoint!r} does not exist')
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    # keys as the loader revises them (a DDP model's 'module.' dropped)
    keys = [
        k[len('module.'):] if k.startswith('module.') else k
        for k in ckpt.get('state_dict', ckpt)
    ]
    # layers with weights or buffers must find them in the checkpoint
    missing = [
        paths[id(m)] for m in layers.values() if m.state_dict() and not any(
            k.startswith(paths[id(m)] + '.') for k in keys)
    ]
    if missing:
        raise CLIError(
            f'{checkpoint} holds no weights for {len(missing)} of the '
            f'{len(layers)} cache layers of this config (e.g. '
            f'{missing[0]}.*): is it an uncached model\'s checkpoint, or '
            'one of another config?')
    _load_checkpoint_to_model(model, ckpt, strict=False)
    return model.eval(), layers


def load_sample(cfg, img=None):
    """One test sample (dict with ``inputs`` and ``data_samples``): the
    file ``img`` through the test pipeline (annotation loading dropped), or
    the first item of the test set."""
    from mmengine.dataset import Compose
    from mmengine.registry import DATASETS
    dataset_cfg = cfg.test_dataloader.dataset
    if img is None:
        return DATASETS.build(dataset_cfg)[0]
    if not osp.isfile(img):
        raise CLIError(f'image {img!r} does not exist')
    pipeline = [
        t for t in dataset_cfg.get('pipeline', cfg.get('test_pipeline', []))
        if 'LoadAnnotations' not in t['type']
    ]
    if not pipeline or 'LoadImageFromFile' not in pipeline[0]['type']:
        # in-memory datasets (digits) have no loading step
        pipeline = [dict(type='LoadImageFromFile')] + pipeline
    return Compose(pipeline)(dict(img_path=img, img_id=0))


@torch.no_grad()
def run_image(model, layers, sample):
    """Forward the sample's image through the backbone (and neck) with
    every cache layer recorded; returns (the recorder, image (H, W, 3)
    RGB)."""
    from mmengine.dataset import pseudo_collate
    data = model.data_preprocessor(pseudo_collate([sample]), False)
    with CacheRecorder(layers) as rec:
        model.extract_feat(data['inputs'])
    img = sample['inputs'].permute(1, 2, 0).numpy()
    # the toolboxes load files as BGR (digits are grey: either order)
    return rec, np.ascontiguousarray(img[..., ::-1])


def chosen_layers(names, wanted=None, most=4):
    """The layers of ``names`` (one kind) for the per-image figures: those
    of ``wanted`` among them, or up to ``most`` evenly spaced."""
    if wanted:
        return [n for n in wanted if n in names]
    if len(names) <= most:
        return list(names)
    idx = np.linspace(0, len(names) - 1, most).round().astype(int)
    return [names[i] for i in idx]


# ------------------------------------------------------------ figures
def _save(fig, path):
    fig.savefig(path, dpi=DPI)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def _integer_ticks(ax):
    """Ticks on whole tokens / segments (every one of a short axis)."""
    from matplotlib.ticker import FixedLocator, MaxNLocator
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis,
                                                       ax.get_ylim())):
        n = int(round(abs(hi - lo)))
        axis.set_major_locator(
            FixedLocator(range(n)) if n <= 8 else MaxNLocator(integer=True))


def plot_mix_weights(grc, path):
    """Fig. 5: sigma(lam) per head (heatmap, layers x heads; heads a layer
    does not have are blank) and its per-layer mean (line)."""
    import matplotlib.pyplot as plt
    names = list(grc)
    weights = [layer.mix_weights().numpy() for layer in grc.values()]
    heads = max(len(w) for w in weights)
    grid = np.full((len(names), heads), np.nan)
    for i, w in enumerate(weights):
        grid[i, :len(w)] = w
    from matplotlib.ticker import MaxNLocator
    fig, (ax0, ax1) = plt.subplots(
        1,
        2,
        figsize=(max(9, 0.25 * heads + 7), 0.3 * len(names) + 2.2),
        gridspec_kw=dict(width_ratios=[max(heads, 6), 4]),
        layout='constrained')
    im = ax0.imshow(
        np.ma.masked_invalid(grid),
        cmap='viridis',
        vmin=0,
        vmax=1,
        aspect='auto')
    if grid.size <= 100:  # small enough to print the values
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax0.text(
                    j,
                    i,
                    f'{v:.2f}',
                    ha='center',
                    va='center',
                    color='w' if v < 0.6 else 'k',
                    fontsize=8)
    ax0.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax0.set_yticks(range(len(names)), names)
    ax0.set_xlabel('head')
    ax0.set_ylabel('cached layer')
    ax0.set_title('sigma(lambda) per head')
    fig.colorbar(im, ax=ax0, label='weight of the cache attention')
    means = [w.mean() for w in weights]
    ax1.plot(means, range(len(names)), 'o-')
    ax1.set_ylim(len(names) - 0.5, -0.5)  # same order as the heatmap
    ax1.set_yticks(range(len(names)), names)
    ax1.set_xlim(0, 1)
    ax1.set_xlabel('mean over heads')
    ax1.set_title('per layer')
    ax1.grid(alpha=.3)
    fig.suptitle('How much each layer relies on its cache')
    return _save(fig, path)


def plot_attention_outputs(grc, records, image, names, path):
    """Fig. 6: per chosen layer, the self-attention and cache-attention
    output maps on the token grid."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(
        len(names),
        3,
        figsize=(7.5, 2.4 * len(names) + 0.6),
        squeeze=False,
        layout='constrained')
    for row, name in zip(axes, names):
        maps = records.maps(name)
        o_self, o_mem = maps['self_attention'], maps['cache_attention']
        row[0].imshow(image)
        row[0].set_title('input')
        for ax, m, title in ((row[1], o_self, 'self-attention'),
                             (row[2], o_mem, 'cache attention')):
            im = ax.imshow(m[0].numpy(), cmap='jet', vmin=0, vmax=1)
            ax.set_title(f'{name}: {title}', fontsize=9)
            _integer_ticks(ax)
            ax.set_xlabel('token column')
            ax.set_ylabel('token row')
        fig.colorbar(
            im, ax=list(row[1:]), shrink=0.8, label='mean output, [0, 1]')
        row[0].set_xlabel('x (px)')
        row[0].set_ylabel('y (px)')
    fig.suptitle('Self-attention vs cache-attention outputs '
                 '(mean over heads and channels)')
    return _save(fig, path)


def plot_cache_pca(grc, names, path):
    """Each chosen layer's stored cache: first 3 principal components over
    its token grid, as R, G, B."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(
        1, len(names), figsize=(2.6 * len(names) + 0.6, 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        layer = grc[name]
        rgb = cache_pca(layer).numpy()
        ax.imshow(rgb)
        ax.set_title(
            f'{name}: {layer.cache_len} tokens x {layer.cache_dims} ch',
            fontsize=9)
        _integer_ticks(ax)
        ax.set_xlabel('cache token column')
        ax.set_ylabel('cache token row')
    fig.suptitle('The caches: first 3 principal components as RGB')
    fig.tight_layout()
    return _save(fig, path)


def plot_mc_gates(mc, records, names, path):
    """Memory Caching: per chosen layer (rows) and scan (columns), the gate
    weight of each segment (x) for each token (y), mean over heads."""
    import matplotlib.pyplot as plt
    gates = {}
    for n in names:
        maps = records.maps(n)
        gates[n] = [maps['gates']] + ([maps['gates_reversed']]
                                      if 'gates_reversed' in maps else [])
    scans = max(len(g) for g in gates.values())
    fig, axes = plt.subplots(
        len(names),
        scans,
        figsize=(3.4 * scans + 1.2, 2.8 * len(names) + 0.6),
        squeeze=False,
        layout='constrained')
    for row, name in zip(axes, names):
        for scan, ax in enumerate(row):
            if scan >= len(gates[name]):
                ax.axis('off')
                continue
            im = ax.imshow(
                gates[name][scan][0].numpy(),
                cmap='magma',
                vmin=0,
                vmax=1,
                aspect='auto',
                interpolation='nearest')
            which = 'forward scan' if scan == 0 else 'reversed scan'
            ax.set_title(f'{name}, {which}', fontsize=9)
            _integer_ticks(ax)
            ax.set_xlabel('segment (in scan order)')
            ax.set_ylabel('token (raster order)')
    fig.colorbar(im, ax=axes.ravel().tolist(), label='gate weight')
    fig.suptitle('Which segments each token reads')
    return _save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    from mmengine.logging import MMLogger

    import mmcached  # noqa: F401  registers our modules
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    MMLogger.get_current_instance().setLevel('WARNING')
    model, layers = build_model(cfg, args.checkpoint)
    grc = {n: m for n, m in layers.items() if isinstance(m, GRCAttention)}
    mc = {
        n: m
        for n, m in layers.items() if isinstance(m, MemoryCachingAttention)
    }
    other = set(layers) - set(grc) - set(mc)
    if other:
        print(f'no figures for {sorted(other)}: no reader for '
              f'{sorted({type(layers[n]).__name__ for n in other})}')
    unknown = sorted(set(args.layers or []) - set(layers))
    if unknown:
        raise CLIError(f'--layers: unknown {unknown}; this model has '
                       f'{list(layers)}')
    os.makedirs(args.out_dir, exist_ok=True)
    out = []
    records, image = run_image(model, layers, load_sample(cfg, args.img))
    if grc:
        names = chosen_layers(list(grc), args.layers)
        out.append(
            plot_mix_weights(grc, osp.join(args.out_dir, 'mix_weights.png')))
        if names:
            out.append(
                plot_attention_outputs(
                    grc, records, image, names,
                    osp.join(args.out_dir, 'attention_outputs.png')))
            out.append(
                plot_cache_pca(grc, names,
                               osp.join(args.out_dir, 'cache_pca.png')))
    if mc:
        names = chosen_layers(list(mc), args.layers)
        if names:
            out.append(
                plot_mc_gates(mc, records, names,
                              osp.join(args.out_dir, 'mc_gates.png')))
    for path in out:
        print(path)


if __name__ == '__main__':
    main_guard(main)
