import pytest
import torch
from mmdet.models.backbones import SwinTransformer

from mmcached.models.backbones import CachedShiftWindowMSA, CachedSwin
from mmcached.models.layers import GRCAttention
from ._helpers import (check_base_keys, check_cache_use,
                       check_frozen_stage_caches,
                       check_reset_cache_after_pretrained,
                       check_state_dict_round_trip, initialised, num_grc)

# channels 16, 32, 64, 128; heads 1, 2, 4, 8; a shifted block in stage 1
TINY = dict(
    embed_dims=16, depths=(2, 1, 1, 1), num_heads=(1, 2, 4, 8), mlp_ratio=2)


@pytest.mark.parametrize('hw', [(224, 224), (33, 47), (112, 137)])
def test_output_shapes(hw):
    torch.manual_seed(0)
    model, base = CachedSwin(**TINY), SwinTransformer(**TINY)
    x = torch.randn(1, 3, *hw)
    outs = model(x)
    assert isinstance(outs, tuple) and len(outs) == 4
    for out, ref in zip(outs, base(x)):
        assert out.shape == ref.shape


def test_keys_grids_and_selection():
    model = CachedSwin(**TINY)
    check_base_keys(model, SwinTransformer(**TINY))
    attns = [m for m in model.modules() if isinstance(m, CachedShiftWindowMSA)]
    assert len(attns) == 5 and attns[1].shift_size == 3
    assert [a.grc.cache_grid for a in attns] == \
        [(56, 56), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert [a.grc.sr_ratio for a in attns] == [8, 8, 4, 2, 1]
    assert 'stages.0.blocks.1.attn.grc.cache.memory' in model.state_dict()
    model = CachedSwin(**TINY, cached_stages=[2, 3], cache_sr_ratios=(1, ) * 4)
    assert num_grc(model) == 2
    model = CachedSwin(**TINY, cached_layers=[-1, 1])
    names = [
        n for n, m in model.named_modules() if isinstance(m, GRCAttention)
    ]
    assert names == [
        'stages.0.blocks.1.attn.grc', 'stages.3.blocks.0.attn.grc'
    ]


def test_out_indices_and_frozen_stages():
    model = CachedSwin(**TINY, out_indices=(0, 2), frozen_stages=1)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 64]
    model.train()
    for p in model.patch_embed.parameters():
        assert not p.requires_grad
    for n, p in model.stages[0].named_parameters():
        assert not p.requires_grad, n
    assert model.stages[0].training is False
    assert all(p.requires_grad for p in model.stages[1].parameters())
    check_frozen_stage_caches(model, 'stages.0.')


def test_cache_train_eval_batch_and_cp():
    model = initialised(CachedSwin, **TINY)
    x = torch.randn(2, 3, 64, 72)
    check_cache_use(model, x)
    cp = CachedSwin(**TINY, with_cp=True)
    cp.load_state_dict(model.state_dict())
    cp.eval()
    model.eval()
    x.requires_grad_(True)
    torch.testing.assert_close(cp(x), model(x))


def test_with_cp_training_matches_plain(assert_same_caches_and_grads):
    """Checkpointing re-runs GRC layers in backward: caches must be updated
    once per step and gradients must equal those of a plain run."""
    torch.manual_seed(0)
    plain = CachedSwin(**TINY, drop_path_rate=0.)  # no randomness to differ
    plain.init_weights()
    cp = CachedSwin(**TINY, drop_path_rate=0., with_cp=True)
    cp.load_state_dict(plain.state_dict())
    plain.train()
    cp.train()
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    for model in (plain, cp):
        for _ in range(2):  # the second step reads the first one's cache
            model.zero_grad()
            sum(o.square().mean() for o in model(x)).backward()
    assert_same_caches_and_grads(plain, cp)


def test_state_dict_round_trip(tmp_path):
    check_state_dict_round_trip(CachedSwin, TINY, tmp_path)


@pytest.mark.parametrize('reset', [True, False])
def test_reset_cache_after_pretrained(reset, tmp_path):
    # mmdet's Swin Pretrained init keeps only ``backbone.`` keys
    check_reset_cache_after_pretrained(
        CachedSwin, TINY, reset, tmp_path, prefix='backbone.')


@pytest.mark.parametrize('kwargs,match', [
    (dict(cached_stages=[5]), 'cached_stages'),
    (dict(cache_sr_ratios=(8, 4)), 'cache_sr_ratios'),
    (dict(cache_sr_ratios=(8, 4, 2, 0)), 'cache_sr_ratios'),
    (dict(cache_lens=[49, None, None, None]), r'\(h, w\) grid'),
    (dict(cache_cfg=dict(cache_ratio=-1)), 'cache_ratio'),
    (dict(cache_cfg=dict(mode=None)), 'mode'),
    (dict(arch='giant'), 'arch'),
])
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CachedSwin(**dict(TINY, **kwargs))


def test_arch():
    assert CachedSwin.arch_zoo['base']['num_heads'] == [4, 8, 16, 32]
    model = CachedSwin(arch='tiny', depths=(1, 1, 1, 1), out_indices=(3, ))
    assert model.num_features[3] == 768 and num_grc(model) == 4


def test_in_image_classifier():
    """mmpretrain classifier: GAP neck over the tuple of NCHW outputs."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='CachedSwin', **TINY, out_indices=(3, )),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=128)))
    model.init_weights()
    assert model(torch.randn(2, 3, 64, 64), mode='tensor').shape == (2, 5)


def test_build_from_mmdet_scope():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    assert isinstance(
        MODELS.build(dict(type='CachedSwin', **TINY)), CachedSwin)
