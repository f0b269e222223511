import pytest
import torch
from mmdet.models.backbones import (PyramidVisionTransformer,
                                    PyramidVisionTransformerV2)
from mmengine.config import ConfigDict

from mmcached.models.backbones import (CachedPVT, CachedPVTv2,
                                       CachedSpatialReductionAttention)
from mmcached.models.layers import GRCAttention
from ._helpers import (build_in_scope, check_base_keys, check_cache_use,
                       check_reset_cache_after_pretrained,
                       check_state_dict_round_trip, initialised, num_grc)

# tiny: channels 8, 16, 40, 64 (heads 1, 2, 5, 8), one layer per stage
TINY = dict(embed_dims=8, num_layers=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])
PAIRS = [(CachedPVT, PyramidVisionTransformer),
         (CachedPVTv2, PyramidVisionTransformerV2)]


@pytest.mark.parametrize('cls,base_cls', PAIRS)
@pytest.mark.parametrize('hw', [(224, 224), (33, 47), (112, 137)])
def test_output_shapes(cls, base_cls, hw):
    torch.manual_seed(0)
    model = cls(**TINY)
    base = base_cls(**TINY)
    x = torch.randn(1, 3, *hw)
    outs = model(x)
    assert isinstance(outs, tuple) and len(outs) == 4
    for out, ref in zip(outs, base(x)):
        assert out.shape == ref.shape
    assert [o.shape[1] for o in outs] == [8, 16, 40, 64]


@pytest.mark.parametrize('cls,base_cls', PAIRS)
def test_keys_and_grids(cls, base_cls):
    model = cls(**TINY)
    check_base_keys(model, base_cls(**TINY))
    assert num_grc(model) == 4
    attn = model.layers[0][1][-1].attn
    assert isinstance(attn, CachedSpatialReductionAttention)
    # one cache token per stage-1 patch at 224 px, reduced like the keys
    assert attn.grc.cache_grid == (56, 56) and attn.grc.sr_ratio == 8
    assert [m.grc.cache_grid for m in model.modules()
            if isinstance(m, CachedSpatialReductionAttention)] == \
        [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert 'layers.0.1.1.attn.grc.cache.memory' in model.state_dict() \
        if cls is CachedPVT else \
        'layers.0.1.0.attn.grc.cache.memory' in model.state_dict()


def test_same_base_weights_as_uncached():
    torch.manual_seed(3)
    base = PyramidVisionTransformer(**TINY)
    torch.manual_seed(3)
    model = CachedPVT(**TINY)
    sd = model.state_dict()
    for k, v in base.state_dict().items():
        assert torch.equal(sd[k], v), k


def test_out_indices_and_selection():
    model = CachedPVT(**TINY, out_indices=(1, 3))
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 64]
    model = CachedPVT(
        embed_dims=8, num_layers=[2, 1, 1, 2], cached_stages=[0, -1])
    assert num_grc(model) == 4
    model = CachedPVT(
        embed_dims=8, num_layers=[2, 1, 1, 2], cached_layers=[1, 5])
    grc = [n for n, m in model.named_modules() if isinstance(m, GRCAttention)]
    assert grc == ['layers.0.1.2.attn.grc', 'layers.3.1.2.attn.grc']
    model = CachedPVT(
        embed_dims=8,
        num_layers=[2, 1, 1, 2],
        cached_stages=[3],
        cached_layers=[0, 1, 4])
    assert num_grc(model) == 1


def test_cache_lens_and_modes():
    model = CachedPVT(
        **TINY,
        cache_lens=[(8, 8), None, None, 10],
        cache_cfg=dict(mode='paper', cache_ratio=1.0))
    attns = [m for m in model.modules() if isinstance(m, GRCAttention)]
    assert attns[0].cache_len == 64 and attns[3].cache_len == 10
    assert attns[1].cache_grid == (28, 28)
    assert all(a.mode == 'paper' and a.cache_dims == a.embed_dims
               for a in attns)
    outs = model(torch.randn(1, 3, 64, 80))
    assert outs[0].shape == (1, 8, 16, 20)
    # pretrain_img_size sets the default grids
    model = CachedPVT(**TINY, pretrain_img_size=(128, 96))
    assert model.layers[0][1][1].attn.grc.cache_grid == (32, 24)


@pytest.mark.parametrize('cls', [CachedPVT, CachedPVTv2])
def test_cache_train_eval_and_batch(cls):
    check_cache_use(initialised(cls, **TINY), torch.randn(2, 3, 64, 72))


@pytest.mark.parametrize('cls', [CachedPVT, CachedPVTv2])
def test_state_dict_round_trip(cls, tmp_path):
    check_state_dict_round_trip(cls, TINY, tmp_path)


@pytest.mark.parametrize('reset', [True, False])
def test_reset_cache_after_pretrained(reset, tmp_path):
    check_reset_cache_after_pretrained(CachedPVT, TINY, reset, tmp_path)


def test_pretrained_uncached_checkpoint(tmp_path):
    """An uncached checkpoint initialises all base weights; GRC layers are
    initialised from scratch."""
    torch.manual_seed(0)
    base = PyramidVisionTransformer(**TINY)
    base.init_weights()
    path = str(tmp_path / 'base.pth')
    torch.save(base.state_dict(), path)
    model = CachedPVT(
        **TINY, init_cfg=ConfigDict(type='Pretrained', checkpoint=path))
    model.init_weights()
    sd = model.state_dict()
    for k, v in base.state_dict().items():
        assert torch.equal(sd[k], v), k
    lin = model.layers[0][1][1].attn.grc.mem_q
    assert lin.bias.abs().sum() == 0 and lin.weight.std() < 0.05


@pytest.mark.parametrize('kwargs,match', [
    (dict(cached_stages=[4]), 'cached_stages'),
    (dict(cached_stages=['a']), 'cached_stages'),
    (dict(cached_layers=[4]), 'cached_layers'),
    (dict(cache_cfg=dict(cache_ratio=0)), 'cache_ratio'),
    (dict(cache_cfg=dict(cache_ratio=1.5)), 'cache_ratio'),
    (dict(cache_cfg=dict(cache_ratio=0.3)), 'multiple of num_heads'),
    (dict(cache_cfg=dict(mode='fast')), 'mode'),
    (dict(cache_lens=[None, None]), 'cache_lens'),
    (dict(cache_lens=[100, None, None, None]), r'\(h, w\) grid'),
    (dict(cache_lens=[(4, 4), None, None, None]), 'at least 8 x 8'),
    (dict(cache_lens=[(0, 4), None, None, None]), r'cache_lens\[0\]'),
    (dict(arch='huge'), 'arch'),
    (dict(cache_cfg=dict(sr_ratio=2)), 'may not set'),
])
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CachedPVT(**dict(TINY, **kwargs))


def test_arch():
    assert CachedPVT.arch_zoo['medium']['num_layers'] == [3, 4, 18, 3]
    assert CachedPVTv2.arch_zoo['b5']['mlp_ratios'] == [4, 4, 4, 4]
    assert CachedPVTv2.arch_zoo['b0']['embed_dims'] == 32
    model = CachedPVT(arch='tiny', num_layers=[1, 1, 1, 1])  # kwargs win
    assert model.num_layers == [1, 1, 1, 1] and model.embed_dims == 64
    model = CachedPVTv2(arch='b0', out_indices=(3, ))
    assert model.num_layers == [2, 2, 2, 2] and num_grc(model) == 8
    assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 256, 2, 2)


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
def test_build_from_registry(scope):
    model = build_in_scope(scope, dict(type='CachedPVT', **TINY))
    assert isinstance(model, CachedPVT)
    model = build_in_scope(scope, dict(type='mmcached.CachedPVTv2', **TINY))
    assert isinstance(model, CachedPVTv2)


def test_pretrained_with_prefix_loads_classifier_checkpoint(tmp_path):
    """A classifier checkpoint ('backbone.*' keys) loads through
    init_cfg.prefix, which mmdet's PVT itself ignores."""
    kw = dict(
        embed_dims=16,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        pretrain_img_size=64)
    torch.manual_seed(0)
    src = CachedPVT(**kw)
    src.init_weights()
    for m in src.modules():
        if hasattr(m, 'memory'):
            m.memory.fill_(1.)
    path = str(tmp_path / 'cls.pth')
    torch.save(
        {
            'state_dict':
            {'backbone.' + k: v
             for k, v in src.state_dict().items()}
        }, path)
    init_cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    torch.manual_seed(1)
    dst = CachedPVT(
        **kw, reset_cache=True, convert_weights=False, init_cfg=init_cfg)
    dst.init_weights()
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        if 'memory' in k:
            assert not b.any(), k  # reset_cache zeroed the loaded cache
        else:
            assert torch.equal(a, b), k

    bad = CachedPVT(
        **kw, convert_weights=False, init_cfg=dict(init_cfg, prefix='model.'))
    with pytest.raises(AssertionError, match='model.'):
        bad.init_weights()
    torch.save({'state_dict': {'backbone.other': torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match='no weight of checkpoint'):
        CachedPVT(
            **kw, convert_weights=False, init_cfg=init_cfg).init_weights()
