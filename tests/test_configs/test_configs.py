"""Every config loads, builds its model without downloading anything, and
runs: classifiers predict one image, detectors compute losses and predict on
two small images with masks. The largest models only build."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))
# Build only (running them on CPU would take most of the test budget); the
# tiny members of each family run.
LARGE = re.compile(r'medium|pvt-m_|pvtv2-b[1345]|deit-(small|base)|'
                   r'swin-(small|base)|pvt-small|pvt-s_')


def _load(path):
    return Config.fromfile(osp.join(REPO, path))


def _no_pretrained(obj):
    """Drop every Pretrained init (checkpoint paths do not exist here)."""
    if isinstance(obj, dict):
        init = obj.get('init_cfg')
        if isinstance(init, dict) and ('checkpoint' in init
                                       or init.get('type') == 'Pretrained'):
            obj['init_cfg'] = None
        for v in obj.values():
            _no_pretrained(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _no_pretrained(v)
    return obj


def _build(cfg, init=True):
    from mmengine.registry import MODELS
    init_default_scope(cfg.default_scope)
    model_cfg = _no_pretrained(ConfigDict(cfg.model.to_dict()))
    btype = model_cfg.backbone.type
    if btype.startswith('Cached') and MODELS.get(btype) is None:
        pytest.skip(f'{btype} is not implemented yet')
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if init:
        model.init_weights()
    return model


def test_configs_found():
    names = {osp.basename(p) for p in CONFIGS}
    for must in ('cached-pvt-tiny_8xb128_in1k.py', 'pvt-tiny_8xb128_in1k.py',
                 'mc-deit-small_4xb256_in1k.py', 'mc-pvtv2-b2_8xb128_in1k.py',
                 'retinanet_mc-pvtv2-b2_fpn_1x_coco.py',
                 'mask-rcnn_mc-pvtv2-b2_fpn_1x_coco.py',
                 'mc-vit-mini-p8_1xb64-40e_digits.py',
                 'mask-rcnn_cached-pvt-t_fpn_1x_coco.py',
                 'retinanet_cached-pvt-t_fpn_1x_coco.py',
                 'cached-vit-mini-p8_1xb64-40e_digits.py',
                 'mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py'):
        assert must in names


@pytest.mark.parametrize('path', CONFIGS)
def test_config_loads(path):
    cfg = _load(path)
    assert cfg.custom_imports == dict(
        imports=['mmcached'], allow_failed_imports=False)
    assert cfg.default_scope in ('mmdet', 'mmpretrain')
    # Nothing that runs may download weights.
    assert '://' not in str(cfg.model), 'a URL in the model config'
    assert cfg.get('load_from') is None
    if 'digits' not in path:
        assert isinstance(cfg.get('data_root'), str)
        assert cfg.train_dataloader.dataset.data_root == cfg.data_root
    # Resumed runs continue exactly (mmcached/engine/hooks).
    assert 'ExactResumeHook' in [h.type for h in cfg.custom_hooks]
    name = osp.basename(path)
    backbone = cfg.model.backbone
    # One spelling everywhere: a Cached* backbone, cached or not.
    assert backbone.type.startswith('Cached')
    prefix = _cache_prefix(name)
    if prefix:
        assert backbone.get('cached_stages', None) is None
        layer = backbone.get('cache_cfg', {}).get('type', 'GRCAttention')
        assert layer == CACHE_LAYERS[prefix]
        if _is_ablation(path):  # a variant of the config it is named after
            ablated = osp.join(
                osp.dirname(osp.dirname(path)),
                name.rsplit('_', 1)[0] + '.py')
            assert ablated in CONFIGS, f'no config {ablated} to ablate'
        else:
            twin = osp.join(osp.dirname(path), name.replace(prefix, ''))
            assert twin in CONFIGS, f'no uncached twin {twin}'
        if cfg.default_scope == 'mmdet' and 'shapes' not in name:
            assert cfg.model.backbone.reset_cache is True
            assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    else:
        assert backbone.cached_stages == []


def test_cache_runtime_written_once():
    """mmcached's import (and the cache hooks beside it) is written in one
    place, configs/_base_/cache_runtime.py, which the family bases list;
    test_config_loads checks that every config ends up with both."""
    spelled = [
        osp.relpath(p, REPO) for p in glob.glob(
            osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
        if re.search(r'^custom_imports\s*=',
                     open(p).read(), re.M)
    ]
    assert spelled == [osp.join('configs', '_base_', 'cache_runtime.py')]


# the name prefix of a config with a cache -> its cache layer
# ('linear-': Memory Caching with one segment, MC's plain linear-memory twin)
CACHE_LAYERS = {
    'cached-': 'GRCAttention',
    'mc-': 'MemoryCachingAttention',
    'linear-': 'MemoryCachingAttention'
}


def _cache_prefix(name):
    """'cached-' or 'mc-' where the name has one (first or after the
    detector's name), else None."""
    for prefix in CACHE_LAYERS:
        if name.startswith(prefix) or f'_{prefix}' in name:
            return prefix
    return None


def _is_ablation(path):
    """configs/embedded/ablations/<config>_<what>.py: one change to
    <config>, for tools/analysis/seed_study.py (no twin of its own)."""
    return osp.basename(osp.dirname(path)) == 'ablations'


TWINS = [
    p for p in CONFIGS
    if _cache_prefix(osp.basename(p)) and not _is_ablation(p)
]

# Variables of the bases that configs read through `_base_.` (the cache
# layers of configs/_base_/cache/, the detection backbones of
# configs/_base_/cached-{pvt,swin}_det_1x.py): a Memory Caching config has
# mc_cache_cfg, its uncached twin may not.
BASE_VARIABLES = ('grc_cache_cfg', 'mc_cache_cfg', 'cached_pvt_t_backbone',
                  'cached_pvtv2_b2_backbone', 'mc_pvtv2_b2_backbone',
                  'cached_swin_t_backbone')


@pytest.mark.parametrize('path', TWINS)
def test_twins_differ_only_in_cache(path):
    """The uncached twin is the config with cached_stages=[] and no cache
    layer of its own (and, for detection, its own ImageNet checkpoint)."""
    prefix = _cache_prefix(osp.basename(path))
    cached = _load(path).to_dict()
    plain = _load(
        osp.join(osp.dirname(path),
                 osp.basename(path).replace(prefix, ''))).to_dict()
    for cfg in (cached, plain):
        for name in BASE_VARIABLES:
            cfg.pop(name, None)
    assert plain['model']['backbone'].pop('cached_stages') == []
    assert cached['model']['backbone'].pop('cached_stages', None) is None
    if prefix != 'cached-':  # another cache layer than the family's GRC
        cached['model']['backbone'].pop('cache_cfg')
        plain['model']['backbone'].pop('cache_cfg')
    if cached.get('checkpoint'):
        assert plain['checkpoint'] == cached['checkpoint'].replace(prefix, '')
        for cfg in (cached, plain):
            init = cfg['model']['backbone']['init_cfg']
            assert init['checkpoint'] == cfg.pop('checkpoint')
            init.pop('checkpoint')
    assert cached == plain


# classifiers: ImageNet and the embedded digits (not the digit canvases)
CLS = [p for p in CONFIGS if re.search(r'in1k|digits(?!-canvas)', p)]
DET = [p for p in CONFIGS if p not in CLS]


@pytest.mark.parametrize('path', CLS)
def test_classifier(path):
    from mmpretrain.structures import DataSample
    cfg = _load(path)
    model = _build(cfg, init=not LARGE.search(path))
    if LARGE.search(path):
        return
    # ImageNet models run on 64 px (any size works; 224 px is slow on CPU).
    size = 64 if 'in1k' in path else cfg.model.backbone.get(
        'img_size', cfg.model.backbone.get('pretrain_img_size'))
    num_classes = cfg.model.head.num_classes
    torch.manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8)],
        data_samples=[DataSample().set_gt_label(1)])
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(data, False), mode='predict')
    assert out[0].pred_score.shape == (num_classes, )
    assert torch.isfinite(out[0].pred_score).all()


@pytest.mark.parametrize('path', DET)
def test_detector(path):
    from mmdet.testing import demo_mm_inputs
    cfg = _load(path)
    if LARGE.search(path):
        _build(cfg, init=False)
        return
    # Few proposals: random weights would send 1000s through the RoI heads.
    for key, sub in (('train_cfg', 'rpn_proposal'), ('test_cfg', 'rpn')):
        if cfg.model.get(key) and sub in cfg.model[key]:
            cfg.model[key][sub].update(nms_pre=100, max_per_img=50)
    if cfg.model.get('test_cfg') and 'rcnn' in cfg.model.test_cfg:
        cfg.model.test_cfg.rcnn.max_per_img = 20
    model = _build(cfg)
    head = cfg.model.get('bbox_head') or cfg.model.roi_head.bbox_head
    with_mask = 'roi_head' in cfg.model and 'mask_head' in cfg.model.roi_head
    torch.manual_seed(0)
    packed = demo_mm_inputs(
        2, [(3, 128, 128), (3, 96, 112)],
        num_items=[3, 2],
        num_classes=head.num_classes,
        with_mask=with_mask)
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        out = model(**data, mode='predict')
    assert len(out) == 2
    assert 'bboxes' in out[0].pred_instances
    if with_mask:
        assert 'masks' in out[0].pred_instances


def test_demo_draws_detections(tmp_path):
    """demo/image_demo.py on an embedded detection config (no checkpoint)."""
    import importlib.util

    from mmcached.datasets import make_shapes
    root = make_shapes(str(tmp_path / 'shapes'), num_train=1, num_val=1)
    spec = importlib.util.spec_from_file_location(
        'image_demo', osp.join(REPO, 'demo', 'image_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = str(tmp_path / 'out' / 'vis.png')
    cfg = osp.join(REPO, 'configs', 'embedded',
                   'mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py')
    demo.main([osp.join(root, 'val', '00000.png'), cfg, '--out-file', out])
    import mmcv
    assert mmcv.imread(out).shape == (128, 128, 3)
