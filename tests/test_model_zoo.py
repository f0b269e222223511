"""The model zoo's metafiles: mim finds them through the package's
model-index, and mmpretrain's API (list_models, get_model,
inference_model) serves our classifiers once mmcached is imported."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
import yaml

import mmcached
from mmcached.utils.model_zoo import MODEL_INDEX, classifier_models

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FAMILIES = ('deit', 'pvt', 'pvtv2', 'swin', 'embedded')


def _metafile(family):
    with open(osp.join(REPO, 'configs', family, 'metafile.yml')) as f:
        return yaml.safe_load(f)


def test_model_index_lists_every_family():
    # the package's copy is the repository's (a link here, a copy in a wheel)
    assert osp.samefile(MODEL_INDEX, osp.join(REPO, 'model-index.yml'))
    with open(MODEL_INDEX) as f:
        index = yaml.safe_load(f)
    assert index['Import'] == [
        f'configs/{family}/metafile.yml' for family in FAMILIES
    ]


@pytest.mark.parametrize('family', FAMILIES)
def test_metafile(family):
    meta = _metafile(family)
    collections = {c['Name']: c for c in meta['Collections']}
    for c in collections.values():
        assert c['Paper']['URL'].startswith('https://arxiv.org/abs/')
    names = [m['Name'] for m in meta['Models']]
    assert len(names) == len(set(names))
    for model in meta['Models']:
        # every cached / MC config of the family, by its own name
        assert model['Config'] == f'configs/{family}/{model["Name"]}.py'
        assert osp.isfile(osp.join(REPO, model['Config']))
        assert model['In Collection'] in collections
        assert model['Metadata']['Parameters'] > 0
        assert model['Metadata']['FLOPs'] > 0
        assert 'Weights' not in model  # none released yet
    on_disk = {
        osp.splitext(f)[0]
        for f in __import__('os').listdir(osp.join(REPO, 'configs', family))
        if f.endswith('.py') and ('cached-' in f or 'mc-' in f)
    }
    assert set(names) == on_disk


def test_parameters_are_the_models():
    """Metadata.Parameters is the built model's count."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    meta = _metafile('embedded')
    model = next(m for m in meta['Models']
                 if m['Name'] == 'cached-vit-mini-p8_1xb64-40e_digits')
    cfg = Config.fromfile(osp.join(REPO, model['Config']))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        built = MODELS.build(cfg.model)
    assert model['Metadata']['Parameters'] == sum(p.numel()
                                                  for p in built.parameters())


def test_mmpretrain_lists_and_builds_our_classifiers():
    import mmpretrain
    from mmpretrain.apis import ModelHub
    names = mmpretrain.list_models('*cached*') + mmpretrain.list_models('mc-*')
    ours = {m.name for m in classifier_models()}
    configs = {
        osp.splitext(osp.basename(c))[0]
        for family in FAMILIES
        for c in glob.glob(osp.join(REPO, 'configs', family, '*.py'))
    }
    # every cached / MC classifier config
    assert ours == {c
                    for c in configs
                    if c.startswith(('cached-', 'mc-'))} and len(ours) == 20
    assert ours == set(names)
    assert 'cached-deit-tiny_4xb256_in1k' in names
    assert 'mc-deit-small_4xb256_in1k' in names
    # detectors are mmdet's: not in mmpretrain's hub
    assert not [n for n in names if n.startswith(('mask-rcnn', 'retinanet'))]
    # mmpretrain's own models are still there
    assert 'deit-tiny_4xb256_in1k' in mmpretrain.list_models('deit-tiny*')
    assert ModelHub.get('cached-pvt-tiny_8xb128_in1k').config.model.backbone \
        .type == 'CachedPVT'


@pytest.fixture
def fresh_default_scope():
    """No default scope, as in a fresh process: other tests leave theirs
    (mmdet, mmengine) behind, and mmpretrain's inferencer builds its
    pipeline from the current one."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    DefaultScope._instance_dict.clear()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def test_get_model_and_inference_model(fresh_default_scope):
    import mmpretrain
    torch.manual_seed(0)
    model = mmpretrain.get_model('cached-vit-mini-p8_1xb64-40e_digits')
    assert type(model.backbone).__name__ == 'CachedViT'
    image = (np.random.default_rng(0).random(
        (32, 32, 3)) * 255).astype(np.uint8)
    result = mmpretrain.inference_model(model, image)
    assert 0 <= result['pred_label'] < 10
    assert len(result['pred_scores']) == 10
    # a full-size ImageNet model builds by name too (no weights: random)
    model = mmpretrain.get_model('cached-deit-tiny_4xb256_in1k')
    assert type(model.backbone).__name__ == 'CachedViT'
    assert model.head.num_classes == 1000


def test_mim_search_lists_our_models(monkeypatch):
    """``mim search mmcached``: mim reads the installed package's
    .mim/model-index.yml (here: the mmcached imported, this checkout)."""
    search = pytest.importorskip('mim.commands.search')
    monkeypatch.setattr(search, 'get_installed_path',
                        lambda package: osp.dirname(mmcached.__file__))
    table = search.get_model_info('mmcached')
    names = set(table.index)
    assert 'cached-deit-tiny_4xb256_in1k' in names
    assert 'mask-rcnn_cached-pvt-t_fpn_1x_coco' in names
    assert 'mc-pvtv2-b2_8xb128_in1k' in names
    row = table.loc['cached-vit-mini-p8_1xb64-40e_digits']
    assert row['config'] == \
        'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py'
    assert int(row['parameters']) > 0 and int(row['flops']) > 0


def test_registration_is_idempotent():
    from mmpretrain.apis import ModelHub

    from mmcached.utils import model_zoo
    before = dict(ModelHub._models_dict)
    model_zoo.register()
    ModelHub._register_mmpretrain_models()
    assert ModelHub._models_dict.keys() == before.keys()
    assert mmcached.__file__
