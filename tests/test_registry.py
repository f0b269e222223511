"""Importing mmcached registers its modules for every toolbox scope."""
import pytest
import torch
from mmengine.registry import init_default_scope

import mmcached
from mmcached.registry import MODELS as MMCACHED_MODELS

GRC = dict(type='GRCAttention', embed_dims=32, num_heads=2, cache_len=16)


def _models_of(scope):
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    else:
        from mmengine.registry import MODELS
    return MODELS


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain', 'mmengine'])
@pytest.mark.parametrize('prefix', ['', 'mmcached.'])
def test_build_from_every_scope(scope, prefix):
    init_default_scope(scope)
    layer = _models_of(scope).build(dict(GRC, type=prefix + GRC['type']))
    assert type(layer).__name__ == 'GRCAttention'
    x = torch.randn(1, 16, 32)
    assert layer(x, x).shape == (1, 16, 32)


def test_all_models_mirrored_in_root():
    from mmengine.registry import MODELS as ROOT
    assert mmcached.REGISTERED_MODELS, 'nothing registered'
    for name in mmcached.REGISTERED_MODELS:
        assert ROOT.get(name) is MMCACHED_MODELS.get(name), name


def test_unknown_type_error_names_the_type():
    init_default_scope('mmdet')
    with pytest.raises(KeyError, match='GRCAttentoin'):
        _models_of('mmdet').build(dict(GRC, type='GRCAttentoin'))
