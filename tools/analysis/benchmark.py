"""Training and inference throughput, memory and FLOPs of a cached config
against its uncached twin, printed like the paper's Table 9.

Both models are built from their configs (random weights: speed does not
depend on them) and fed the same synthetic batch at the config's test input
size: random images, and for detection mmdet's ``demo_mm_inputs`` boxes (and
masks where the model has a mask head). A training step is the toolbox's
``model.train_step`` with the config's optimizer (data preprocessor, loss,
backward, update at lr 0; no data loading); a test step is ``model.test_step``
without gradients. The cached model gets the twin's weights for every key
they share. All four (cached / uncached x train / test) are
interleaved round by round after a warm-up, so drift on a shared machine
hits them alike, and each reports its median (the measuring loop of
``benchmark_grc.py``).

Memory: on CUDA the peak allocated during a step; on CPU, where torch keeps
no allocator statistics, the bytes of the tensors autograd saves for
backward in a training step (the activation memory; none for a test step).
FLOPs: one image's forward, multiply-adds as mmengine counts them with SDPA
counted (:mod:`mmcached.utils.flops`): the whole classifier, or a
detector's backbone and neck (``extract_feat``; the heads' proposals cannot
be traced).

Example::

    python tools/analysis/benchmark.py \
        configs/pvt/cached-pvt-tiny_8xb128_in1k.py --batch-size 8 --rounds 5
"""
import argparse
import os.path as osp
from collections import OrderedDict

import torch
import torch.nn as nn
from benchmark_utils import add_host_args, measure, setup_host

from mmcached.analysis.cache_inspect import named_cache_layers
from mmcached.utils.cli import CLIError, load_config, main_guard
from mmcached.utils.runner_model import build_runner_model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a cached config')
    parser.add_argument(
        '--twin',
        help='its uncached twin (default: the config of the same name '
        "without 'cached-' or 'mc-' beside it)")
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--batch-size',
        type=int,
        help='images per step (default: the config\'s training batch)')
    parser.add_argument(
        '--img-size',
        type=int,
        nargs='+',
        help='H [W] of the synthetic images (default: the config\'s test '
        'input size)')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    add_host_args(
        parser,
        keep_heap_help='glibc only: keep freed memory in the heap (as the '
        'CUDA caching allocator does); see benchmark_grc.py')
    parser.add_argument(
        '--skip-flops', action='store_true', help='do not count FLOPs')
    return parser.parse_args(argv)


# ------------------------------------------------------------ configs
#: name prefixes of configs with a cache layer (GRC, Memory Caching)
CACHE_PREFIXES = ('cached-', 'mc-')


def find_twin(config: str) -> str:
    """The uncached twin of ``config``: same folder, same name without
    ``cached-`` (or ``mc-``)."""
    name = osp.basename(config)
    prefix = next(
        (p for p in CACHE_PREFIXES if name.startswith(p) or f'_{p}' in name),
        None)
    if prefix is None:
        raise CLIError(f"{config}: no 'cached-' or 'mc-' in its name, so no "
                       'twin to find by name; give --twin')
    twin = osp.join(osp.dirname(config), name.replace(prefix, '', 1))
    if not osp.isfile(twin):
        raise CLIError(f'{config}: its uncached twin {twin} does not exist; '
                       'give --twin')
    return twin


def _hw(size):
    """(h, w) from a pipeline size: an int, or mmcv's (w, h)."""
    if isinstance(size, int):
        return size, size
    return int(size[1]), int(size[0])


def input_size(cfg):
    """(h, w) of the images the test pipeline makes: its last crop or
    resize."""
    dataset = cfg.test_dataloader.dataset
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline') or []
    size = None
    for t in pipeline:
        if 'crop_size' in t:
            size = _hw(t['crop_size'])
        elif 'scale' in t and 'Resize' in t['type']:
            # ResizeEdge's scale is an edge: its square stands in, until a
            # crop follows
            size = _hw(t['scale'])
    if size is None:
        raise CLIError('cannot read the input size from the test pipeline; '
                       'give --img-size')
    return size


def task_of(model) -> str:
    from mmdet.models.detectors import BaseDetector
    return 'det' if isinstance(model, BaseDetector) else 'cls'


def synthetic_batch(model, batch, hw):
    """A collated batch as a dataloader gives it (uint8 images and data
    samples with targets), made up for ``model``'s task."""
    g = torch.Generator().manual_seed(0)
    if task_of(model) == 'det':
        from mmdet.testing import demo_mm_inputs
        roi_head = getattr(model, 'roi_head', None)  # two-stage detectors
        bbox_head = getattr(roi_head or model, 'bbox_head')
        return demo_mm_inputs(
            batch_size=batch,
            image_shapes=[(3, *hw)] * batch,
            num_items=[3] * batch,
            num_classes=bbox_head.num_classes,
            with_mask=getattr(roi_head, 'with_mask', False))
    from mmpretrain.structures import DataSample
    num_classes = model.head.num_classes
    return dict(
        inputs=[
            torch.randint(0, 256, (3, *hw), generator=g, dtype=torch.uint8)
            for _ in range(batch)
        ],
        data_samples=[
            DataSample().set_gt_label(i % num_classes) for i in range(batch)
        ])


def gflops(model, hw, device):
    """Forward GFLOPs of one image (eval mode: the caches stay as they
    are): the classifier, or the detector's backbone + neck."""
    from mmcached.utils.flops import get_model_complexity_info

    class Forward(nn.Module):

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            if task_of(self.m) == 'det':
                return self.m.extract_feat(x)
            return self.m(x, mode='tensor')

    model.eval()
    res = get_model_complexity_info(
        Forward(model),
        inputs=(torch.randn(1, 3, *hw, device=device), ),
        show_table=False,
        show_arch=False)
    return res['flops'] / 1e9


def make_step(variant):
    """A train or test step of one model on its batch."""
    model, kind, optim_wrapper, data = variant
    if kind == 'train':

        def step():
            model.train()
            model.train_step(data, optim_wrapper)
    else:

        def step():
            model.eval()
            with torch.no_grad():
                model.test_step(data)

    return step


# ------------------------------------------------------------ report
def table(results, flops, batch, device):
    """Markdown table: one row per model, then the cached / uncached
    ratios."""
    cuda = device.type == 'cuda'
    mem_head = 'train peak MiB | test peak MiB' if cuda else \
        'train activations MiB'
    rows = OrderedDict()
    for name in ('uncached', 'cached'):
        t_train, m_train = results[(name, 'train')]
        t_test, m_test = results[(name, 'test')]
        rows[name] = [
            batch / t_train, batch / t_test,
            flops.get(name), m_train / 2**20
        ] + ([m_test / 2**20] if cuda else [])
    lines = [
        f'| model | train (img/s) | test (img/s) | GFLOPs | {mem_head} |',
        '|---' * (5 + cuda) + '|'
    ]

    def fmt(v, spec):
        return 'n/a' if v is None else format(v, spec)

    for name, r in rows.items():
        cells = [fmt(r[0], '.2f'), fmt(r[1], '.2f'), fmt(r[2], '.4g')] + \
            [fmt(v, '.1f') for v in r[3:]]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    ratio = [
        None if a is None or b is None else a / b
        for a, b in zip(rows['cached'], rows['uncached'])
    ]
    lines.append('| cached / uncached | ' +
                 ' | '.join(fmt(v, '.3f') for v in ratio) + ' |')
    return '\n'.join(lines), ratio


def main(argv=None):
    args = parse_args(argv)
    heap = setup_host(args)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise CLIError('--device cuda: no CUDA device is visible')
    device = torch.device(args.device)
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper

    import mmcached  # noqa: F401  registers our modules
    MMLogger.get_current_instance().setLevel('ERROR')
    twin = args.twin or find_twin(args.config)
    cfgs = OrderedDict((('cached', load_config(args.config)),
                        ('uncached', load_config(twin))))
    if args.img_size:
        if len(args.img_size) > 2:
            raise CLIError('--img-size takes H or H W')
        hw = (args.img_size[0], args.img_size[-1])
    else:
        hw = input_size(cfgs['cached'])
    batch = args.batch_size or cfgs['cached'].train_dataloader.batch_size
    torch.manual_seed(0)
    models = OrderedDict(
        (n, build_runner_model(c).to(device)) for n, c in cfgs.items())
    # The twins share every weight name: the same weights for all of them,
    # so that a detector's post-processing (how many boxes survive) costs
    # the same in both.
    models['cached'].load_state_dict(
        models['uncached'].state_dict(), strict=False)
    n_layers = {n: len(named_cache_layers(m)) for n, m in models.items()}
    if not n_layers['cached']:
        raise CLIError(f'{args.config} builds no cache layer: not a cached '
                       'config')
    if n_layers['uncached']:
        raise CLIError(f'{twin} builds {n_layers["uncached"]} cache layers: '
                       'not an uncached twin')
    variants, flops = OrderedDict(), {}
    for name, model in models.items():
        if not args.skip_flops:
            flops[name] = gflops(model, hw, device)
        optim_wrapper = build_optim_wrapper(model, cfgs[name].optim_wrapper)
        # the update runs, at lr 0: the weights, so the cost of a detector's
        # post-processing, stay as they are from round to round
        for group in optim_wrapper.optimizer.param_groups:
            group['lr'] = 0.
        data = synthetic_batch(model, batch, hw)
        for kind in ('train', 'test'):
            variants[(name, kind)] = (model, kind, optim_wrapper, data)
    dev_name = torch.cuda.get_device_name(device) if device.type == 'cuda' \
        else f'CPU, {torch.get_num_threads()} threads, {heap}'
    print(f'{osp.basename(args.config)} ({n_layers["cached"]} cached '
          f'layers) vs {osp.basename(twin)}\ntorch {torch.__version__}, '
          f'{dev_name}; batch {batch}, {hw[0]}x{hw[1]} px, synthetic data; '
          f'median of {args.rounds} interleaved rounds after {args.warmup} '
          'warm-up steps\n')
    results = measure(variants, make_step, device, args.rounds, args.warmup)
    text, ratio = table(results, flops, batch, device)
    print(text)
    if flops:
        parity = flops['uncached'] / flops['cached']
        print(f'\nAt equal FLOP rates the cached/uncached throughput would '
              f'be {parity:.3f} (uncached / cached GFLOPs); training runs '
              f'at {ratio[0] / parity:.0%} and testing at '
              f'{ratio[1] / parity:.0%} of that.')


if __name__ == '__main__':
    main_guard(main)
