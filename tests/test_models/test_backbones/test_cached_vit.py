import pytest
import torch
from mmpretrain.models.backbones import VisionTransformer

from mmcached.models.backbones import CachedMultiheadAttention, CachedViT
from mmcached.models.layers import GRCAttention
from ._helpers import (build_in_scope, check_base_keys, check_cache_use,
                       check_frozen_stage_caches,
                       check_reset_cache_after_pretrained,
                       check_state_dict_round_trip, initialised, num_grc)

ARCH = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)
TINY = dict(arch=ARCH, img_size=64, patch_size=16)


@pytest.mark.parametrize('hw', [(224, 224), (33, 47), (112, 137)])
@pytest.mark.parametrize('out_type', ['cls_token', 'featmap'])
def test_output_shapes(hw, out_type):
    torch.manual_seed(0)
    model = CachedViT(**TINY, out_type=out_type, out_indices=[0, -1])
    base = VisionTransformer(**TINY, out_type=out_type, out_indices=[0, -1])
    x = torch.randn(1, 3, *hw)
    outs = model(x)
    assert isinstance(outs, tuple) and len(outs) == 2
    for out, ref in zip(outs, base(x)):
        assert out.shape == ref.shape
    # the cache layers get the (possibly non-square) patch grid of this
    # input through the forward
    seen = []
    model.layers[0].attn.grc.register_forward_hook(
        lambda m, args, out: seen.append(args[2]))
    model(x)
    assert seen == [tuple(-(-s // 16) for s in hw)]


def test_keys_and_cache_len():
    model = CachedViT(**TINY)
    check_base_keys(model, VisionTransformer(**TINY))
    assert num_grc(model) == 3
    attn = model.layers[1].attn
    assert isinstance(attn, CachedMultiheadAttention)
    assert attn.grc.cache_len == 4 * 4 + 1 and attn.grc.num_extra_tokens == 1
    assert 'layers.1.attn.grc.cache.memory' in model.state_dict()
    # DeiT-S default: 197 tokens at 224 / 16
    model = CachedViT(arch='deit-small', cached_layers=[0], init_cfg=None)
    assert model.embed_dims == 384 and num_grc(model) == 1
    assert model.layers[0].attn.grc.cache_len == 197
    # no class token: patches only
    model = CachedViT(**TINY, with_cls_token=False, out_type='featmap')
    assert model.layers[0].attn.grc.cache_len == 16
    assert model(torch.randn(1, 3, 48, 80))[0].shape == (1, 32, 3, 5)


def test_selection_and_options():
    model = CachedViT(
        **TINY,
        cached_layers=[0, -1],
        cache_lens=50,
        cache_cfg=dict(mode='paper', cache_ratio=1.0))
    grcs = [n for n, m in model.named_modules() if isinstance(m, GRCAttention)]
    assert grcs == ['layers.0.attn.grc', 'layers.2.attn.grc']
    assert model.layers[0].attn.grc.cache_len == 50
    assert model.layers[0].attn.grc.mode == 'paper'
    assert num_grc(CachedViT(**TINY, cached_stages=[])) == 0


def test_frozen_stages():
    model = CachedViT(**TINY, frozen_stages=1)
    model.train()
    assert all(not p.requires_grad for p in model.layers[0].parameters())
    assert not model.layers[0].training
    assert all(p.requires_grad for p in model.layers[1].parameters())
    check_frozen_stage_caches(model, 'layers.0.')


def test_cache_train_eval_and_batch():
    model = initialised(CachedViT, **TINY, drop_path_rate=0.1)
    check_cache_use(model, torch.randn(2, 3, 64, 80))


def test_state_dict_round_trip(tmp_path):
    check_state_dict_round_trip(CachedViT, TINY, tmp_path)


@pytest.mark.parametrize('reset', [True, False])
def test_reset_cache_after_pretrained(reset, tmp_path):
    check_reset_cache_after_pretrained(CachedViT, TINY, reset, tmp_path)


@pytest.mark.parametrize('kwargs,match', [
    (dict(cached_stages=[1]), 'cached_stages'),
    (dict(cached_layers=[3]), 'cached_layers'),
    (dict(cache_lens=[10, 10]), 'cache_lens'),
    (dict(cache_lens=0), r'cache_lens\[0\]'),
    (dict(cache_cfg=dict(cache_ratio=0.1)), 'multiple of num_heads'),
    (dict(cache_cfg=dict(mode='Released')), 'mode'),
])
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CachedViT(**dict(TINY, **kwargs))


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet'])
def test_build_from_registry(scope):
    model = build_in_scope(scope, dict(type='CachedViT', **TINY))
    assert isinstance(model, CachedViT)


def test_in_image_classifier():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='CachedViT', **TINY),
            neck=None,
            head=dict(
                type='VisionTransformerClsHead', num_classes=5,
                in_channels=32)))
    model.init_weights()
    assert model(torch.randn(2, 3, 64, 48), mode='tensor').shape == (2, 5)
