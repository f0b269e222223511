"""Write the model zoo's metafiles (configs/<family>/metafile.yml).

    python tools/misc/make_metafiles.py [--families deit pvt ...]

One metafile per family in the OpenMMLab format (Collections with their
paper, Models with Name, Config and Metadata), listing the cached and Memory
Caching configs (the uncached twins are the toolboxes' own models). Each
model is built from its config: Parameters counts its parameters, and FLOPs
(multiply-adds, SDPA included: mmcached.utils.flops) are measured at the
config's test size: the classifier at its backbone's image size (224x224;
32x32 for the embedded ones), the detector's backbone at its test Resize
(1333x800 for COCO; 64x64 for the embedded ones): the backbone is what
caching changes. No Weights or Results: none are released yet.
"""
import argparse
import glob
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

import mmcached  # noqa: F401
from mmcached.utils.flops import get_model_complexity_info

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GRC_PAPER = dict(
    Title='Cached Transformers: Improving Transformers with Differentiable '
    'Memory Cache',
    URL='https://arxiv.org/abs/2312.12742')
MC_PAPER = dict(
    Title='Memory Caching: RNNs with Growing Memory',
    URL='https://arxiv.org/abs/2602.24281')
FAMILIES = {
    'deit': ('DeiT', 'Vision Transformer'),
    'pvt': ('PVT', 'Pyramid Vision Transformer'),
    'pvtv2': ('PVTv2', 'Pyramid Vision Transformer v2'),
    'swin': ('Swin', 'Swin Transformer'),
    'embedded': ('mini (embedded)', 'Vision Transformer / PVT'),
}
DETECTOR_SIZE = (800, 1333)


def cached_configs(family: str):
    """The family's cached and MC configs (not ablations, not twins)."""
    paths = sorted(glob.glob(osp.join(REPO, 'configs', family, '*.py')))
    return [
        p for p in paths if any(
            t in osp.basename(p) for t in ('cached-', 'mc-'))
    ]


def test_size(cfg) -> tuple:
    """(h, w) of the classifier's test input: its backbone's img_size."""
    size = cfg.model.backbone.get(
        'img_size', cfg.model.backbone.get('pretrain_img_size', 224))
    return (size, size) if isinstance(size, int) else tuple(size)


def measure(path: str) -> dict:
    cfg = Config.fromfile(path)
    detector = cfg.default_scope == 'mmdet'
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model).eval()
    params = sum(p.numel() for p in model.parameters())
    net = model.backbone if detector else model
    h, w = detector_size(cfg) if detector else test_size(cfg)
    if not detector:
        # the classifier's tensor path: backbone, neck, head's pre_logits
        # and its fc (mode='tensor')
        net = _Tensor(model)
    with torch.no_grad():
        flops = get_model_complexity_info(
            net,
            inputs=(torch.randn(1, 3, h, w), ),
            show_table=False,
            show_arch=False)['flops']
    return dict(
        params=params,
        flops=int(flops),
        size=(h, w),
        detector=detector,
        mc='mc-' in osp.basename(path),
        data=training_data(osp.basename(path)))


def training_data(name: str) -> str:
    for key, data in (('in1k', 'ImageNet-1k'), ('coco', 'COCO'),
                      ('digits-canvas', 'Digit canvases (embedded)'),
                      ('digits', 'Digits (embedded)'), ('shapes',
                                                        'Shapes (embedded)')):
        if key in name:
            return data
    raise ValueError(f'no training data known for {name}')


def detector_size(cfg) -> tuple:
    """(h, w) of the detector's test Resize (its keep-ratio box), else
    1333x800."""
    for t in cfg.get('test_dataloader', {}).get('dataset',
                                                {}).get('pipeline', []):
        if t.get('type') == 'Resize' and t.get('scale'):
            w, h = t['scale']
            return (h, w)
    return DETECTOR_SIZE


class _Tensor(torch.nn.Module):

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')


def task(name: str, detector: bool) -> str:
    """The task as the toolboxes' metafiles name it (mmpretrain's
    inference_model picks its inferencer by it)."""
    if not detector:
        return 'Image Classification'
    return 'Instance Segmentation' if name.startswith('mask-rcnn') else \
        'Object Detection'


def reuse(family: str) -> dict:
    """The measurements in the family's current metafile, by config path."""
    import yaml
    with open(osp.join(REPO, 'configs', family, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    colls = {c['Name']: c for c in meta['Collections']}
    found = {}
    for model in meta['Models']:
        arch = colls[model['In Collection']]['Metadata']['Architecture']
        cfg = Config.fromfile(osp.join(REPO, model['Config']))
        detector = cfg.default_scope == 'mmdet'
        found[osp.join(REPO, model['Config'])] = dict(
            params=model['Metadata']['Parameters'],
            flops=model['Metadata']['FLOPs'],
            size=detector_size(cfg) if detector else test_size(cfg),
            detector=detector,
            mc='Memory Caching' in arch,
            data=training_data(model['Name']))
    return found


def collection_name(family, detector, mc, head=''):
    short = FAMILIES[family][0]
    kind = 'Memory Caching' if mc else 'Cached'
    return f'{head}{kind} {short}' if not detector else \
        f'{head} {kind} {short}'.strip()


def metafile(family: str, measured: dict) -> str:
    collections, models = {}, []
    for path, m in measured.items():
        name = osp.splitext(osp.basename(path))[0]
        head = ''
        if m['detector']:
            head = 'Mask R-CNN' if name.startswith('mask-rcnn') else \
                'RetinaNet'
        coll = collection_name(family, m['detector'], m['mc'], head)
        collections.setdefault(coll, m)
        what = 'backbone' if m['detector'] else 'model'
        models.append(
            f'  - Name: {name}\n'
            f'    In Collection: {coll}\n'
            f'    Metadata:\n'
            f'      # multiply-adds of the {what} at '
            f'{m["size"][1]}x{m["size"][0]}\n'
            f'      FLOPs: {m["flops"]}\n'
            f'      Parameters: {m["params"]}\n'
            f'      Training Data: {m["data"]}\n'
            f'    Results:  # the task only: no trained weights yet\n'
            f'      - Task: {task(name, m["detector"])}\n'
            f'        Dataset: {m["data"]}\n'
            f'        Metrics: {{}}\n'
            f'    Config: configs/{family}/{osp.basename(path)}\n')
    out = [
        '# Written by tools/misc/make_metafiles.py; no released weights '
        'yet.\nCollections:\n'
    ]
    for coll, m in collections.items():
        paper = MC_PAPER if m['mc'] else GRC_PAPER
        layer = 'Memory Caching' if m['mc'] else 'GRC Attention'
        arch = [layer, FAMILIES[family][1]]
        if m['detector']:
            arch.append('RetinaNet' if 'RetinaNet' in coll else 'Mask R-CNN')
        out.append(f'  - Name: {coll}\n'
                   f'    Metadata:\n'
                   f'      Architecture:\n' +
                   ''.join(f'        - {a}\n' for a in arch) + f'    Paper:\n'
                   f'      Title: \'{paper["Title"]}\'\n'
                   f'      URL: {paper["URL"]}\n'
                   f'    README: configs/README.md\n')
    out.append('\nModels:\n')
    out += models
    return ''.join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Write configs/<family>/metafile.yml')
    parser.add_argument(
        '--families',
        nargs='+',
        default=list(FAMILIES),
        choices=list(FAMILIES))
    parser.add_argument(
        '--reuse',
        action='store_true',
        help='rewrite the metafiles with the numbers they hold (no model '
        'is built or measured)')
    args = parser.parse_args(argv)
    for family in args.families:
        measured = reuse(family) if args.reuse else {}
        for path in cached_configs(family):
            if path not in measured:
                measured[path] = measure(path)
            print(
                f'{osp.relpath(path, REPO)}: '
                f'{measured[path]["params"] / 1e6:.2f} M params, '
                f'{measured[path]["flops"] / 1e9:.3f} GFLOPs',
                flush=True)
        out = osp.join(REPO, 'configs', family, 'metafile.yml')
        with open(out, 'w') as f:
            f.write(metafile(family, measured))
        print(f'wrote {osp.relpath(out, REPO)}')


if __name__ == '__main__':
    main()
