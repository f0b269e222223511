"""The cache-layer contract: two small cache layers defined here, one of each
kind, plug into all four cached backbones through ``cache_cfg`` alone."""
import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import (PyramidVisionTransformer,
                                    PyramidVisionTransformerV2,
                                    SwinTransformer)
from mmengine.registry import init_default_scope
from mmpretrain.models.backbones import VisionTransformer

from mmcached.models.backbones import (CachedPVT, CachedPVTv2, CachedSwin,
                                       CachedViT)
from mmcached.models.layers import BaseCacheLayer
from mmcached.registry import MODELS


@MODELS.register_module(force=True)
class ToyMixingCache(BaseCacheLayer):
    """out = o_self + gain * memory, memory the mean input token of the last
    training batch. Records what it was given."""

    name = 'toy'

    def __init__(self, embed_dims, num_heads, gain=1.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.site = dict(embed_dims=embed_dims, num_heads=num_heads)
        self.gain = nn.Parameter(torch.tensor(float(gain)))
        self.register_buffer('memory', torch.zeros(embed_dims))
        self.seen = []

    def forward(self, x, o_self, hw_shape):
        self.seen.append((tuple(x.shape), hw_shape))
        if self.training:
            self.memory.copy_(x.detach().mean((0, 1)))
        return o_self + self.gain * self.memory

    def reset_cache(self):
        self.memory.zero_()


@MODELS.register_module(force=True)
class ToyReplacingCache(BaseCacheLayer):
    """Replaces the host's token mixing by a gated mean of its values:
    y = v + sigmoid(u(x)) * mean_tokens(v), with the host's projections."""

    name = 'toy'
    replaces_host = True

    def __init__(self,
                 embed_dims,
                 num_heads,
                 host_projections=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        assert host_projections  # a backbone provides them
        self.u = nn.Linear(embed_dims, 1)

    def forward(self, x, hw_shape, host):
        q, k, v = host.project_qkv(x)
        assert q.shape == k.shape == v.shape == x.shape
        y = v + torch.sigmoid(self.u(x)) * v.mean(1, keepdim=True)
        return host.project_out(y)


PVT_TINY = dict(embed_dims=8, num_layers=[1, 1, 1, 1], mlp_ratios=[2] * 4)
BACKBONES = {
    'pvt': (CachedPVT, PyramidVisionTransformer, PVT_TINY, (64, 72)),
    'pvtv2': (CachedPVTv2, PyramidVisionTransformerV2, PVT_TINY, (64, 72)),
    'swin': (CachedSwin, SwinTransformer,
             dict(
                 embed_dims=16,
                 depths=(1, 1, 1, 1),
                 num_heads=(1, 2, 2, 4),
                 window_size=2,
                 pretrain_img_size=64), (64, 96)),
    'vit': (CachedViT, VisionTransformer,
            dict(
                arch=dict(
                    embed_dims=16,
                    num_layers=2,
                    num_heads=2,
                    feedforward_channels=32),
                img_size=32,
                patch_size=8), (32, 56)),
}


def _pair(name, cache_cfg, seed=0):
    cls, base_cls, kw, hw = BACKBONES[name]
    torch.manual_seed(seed)
    base = base_cls(**kw)
    torch.manual_seed(seed)
    model = cls(cache_cfg=cache_cfg, **kw)
    return model, base, torch.randn(2, 3, *hw)


def _outs(outs):
    return outs if isinstance(outs, (tuple, list)) else (outs, )


def _toys(model):
    return [m for m in model.modules() if isinstance(m, BaseCacheLayer)]


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_mixing_layer_plugs_in(name):
    model, base, x = _pair(name, dict(type='ToyMixingCache', gain=0.))
    toys = _toys(model)
    assert toys and all(isinstance(t, ToyMixingCache) for t in toys)
    # the backbone filled in the host's channels and heads
    for n, t in model.named_modules():
        if isinstance(t, ToyMixingCache):
            host = model.get_submodule(n.rsplit('.', 1)[0])
            site = type(host).site(host)
            assert t.site == dict(
                embed_dims=site['embed_dims'], num_heads=site['num_heads'])
    # base keys unchanged, the layer's under attn.toy
    sd, base_sd = model.state_dict(), base.state_dict()
    assert set(base_sd) <= set(sd)
    assert all('.attn.toy.' in k for k in set(sd) - set(base_sd))
    # gain 0: exactly the host's output
    model.eval()
    base.eval()
    with torch.no_grad():
        for a, b in zip(_outs(model(x)), _outs(base(x))):
            torch.testing.assert_close(a, b)
    # the patch grid reached every layer explicitly
    assert all(
        t.seen and all(hw is not None for _, hw in t.seen) for t in toys)
    # training writes the memory, reset_cache empties it
    model.train()
    model(x)
    assert all(t.memory.abs().sum() > 0 for t in toys)
    cls = type(model)
    kw = dict(
        BACKBONES[name][2],
        cache_cfg=dict(type='ToyMixingCache'),
        reset_cache=True)
    fresh = cls(**kw)
    fresh.load_state_dict(model.state_dict())
    fresh.init_weights()
    assert all(not t.memory.any() for t in _toys(fresh))


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_replacing_layer_plugs_in(name):
    model, base, x = _pair(name, dict(type='ToyReplacingCache'))
    toys = _toys(model)
    assert toys and all(isinstance(t, ToyReplacingCache) for t in toys)
    sd, base_sd = model.state_dict(), base.state_dict()
    # only the layer's own parameters are new; what only the host's token
    # mixing used (PVT's key reduction, Swin's position bias) is gone
    assert all('.attn.toy.' in k for k in set(sd) - set(base_sd))
    gone = set(base_sd) - set(sd)
    assert all(
        '.attn.sr.' in k or '.attn.norm.' in k or 'relative_position' in k
        for k in gone), sorted(gone)[:4]
    missing, unexpected = model.load_state_dict(base_sd, strict=False)
    assert set(missing) == set(sd) - set(base_sd)
    assert set(unexpected) == gone
    model.train()
    outs = _outs(model(x))
    sum(o.float().pow(2).mean() for o in outs).backward()
    # the host's projections and the layer's own u got gradients
    grads = {
        n
        for n, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert any('.attn.toy.u.' in n for n in grads)
    proj = ('attn.in_proj_weight', 'attn.out_proj.weight', 'qkv.weight',
            'proj.weight')
    assert any(n.endswith(proj) for n in grads)
    assert all(p.grad is not None for n, p in model.named_parameters()
               if p.requires_grad), 'a parameter without gradient'


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_cache_cfg_errors(name):
    cls, _, kw, _ = BACKBONES[name]
    with pytest.raises(ValueError, match='may not set'):
        cls(cache_cfg=dict(type='ToyMixingCache', embed_dims=4), **kw)
    with pytest.raises(TypeError, match='gian'):
        cls(cache_cfg=dict(type='ToyMixingCache', gian=1.), **kw)
    with pytest.raises(KeyError, match='not a registered'):
        cls(cache_cfg=dict(type='NoSuchCache'), **kw)
    init_default_scope('mmpretrain')
    with pytest.raises(TypeError, match='not a cache layer'):
        cls(cache_cfg=dict(type='GlobalAveragePooling'), **kw)


def test_layer_found_in_the_toolbox_scope():
    """A user's layer registered in mmdet's registry builds from a config
    run in mmdet's scope."""
    from mmdet.registry import MODELS as DET_MODELS

    @DET_MODELS.register_module(force=True)
    class DetScopeCache(ToyMixingCache):
        pass

    init_default_scope('mmdet')
    model = CachedPVT(cache_cfg=dict(type='DetScopeCache'), **PVT_TINY)
    assert isinstance(_toys(model)[0], DetScopeCache)


def test_called_outside_the_backbone():
    """A cached attention called on its own takes the grid it is given."""
    model, _, _ = _pair('vit', dict(type='ToyMixingCache'))
    attn = model.layers[0].attn
    attn(torch.randn(1, 1 + 3 * 5, 16), (3, 5))
    assert attn.toy.seen[-1] == ((1, 16, 16), (3, 5))


# Cache layers that remove nothing of the host, on every backbone; Memory
# Caching also where it removes nothing (ViT: no key reduction, no position
# bias; elsewhere the uncached twin draws values for what it removes).
TWIN_LAYERS = [(name, dict(type='GRCAttention')) for name in BACKBONES] + [
    ('vit',
     dict(
         type='MemoryCachingAttention',
         segmentation='uniform',
         num_segments=2,
         causal=False)),
    ('pvt', dict(type='ToyMixingCache')),
]


@pytest.mark.parametrize('name,cache_cfg', TWIN_LAYERS)
@pytest.mark.parametrize('seed', [0, 3])
def test_twins_start_from_the_same_weights(name, cache_cfg, seed):
    """For the same seed, a cached backbone and its uncached twin
    (``cached_stages=[]``) hold the same value in every tensor they share,
    after construction and after ``init_weights``, and leave the global
    generator in the same state; the cache layers' own weights do not
    depend on anything but the seed either."""
    cls, _, kw, _ = BACKBONES[name]

    def build(**extra):
        torch.manual_seed(seed)
        model = cls(cache_cfg=cache_cfg, **kw, **extra)
        built = {k: v.clone() for k, v in model.state_dict().items()}
        model.init_weights()
        return model, built, torch.random.get_rng_state()

    cached, cached_built, cached_rng = build()
    plain, plain_built, plain_rng = build(cached_stages=[])
    again, _, _ = build()
    sd, plain_sd = cached.state_dict(), plain.state_dict()
    shared = set(plain_sd)
    assert shared < set(sd)
    for k in shared:
        assert torch.equal(cached_built[k], plain_built[k]), f'built: {k}'
        assert torch.equal(sd[k], plain_sd[k]), f'initialised: {k}'
    assert torch.equal(cached_rng, plain_rng)
    for k, v in again.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # the isolation hides nothing for good
    assert set(cached.state_dict()) == set(sd)


def test_twin_models_start_from_the_same_weights():
    """Whole models as the Runner builds them, with a model-level init_cfg
    (TruncNormal on every Linear) that walks into the backbone: the
    classifier twins share their initial weights, and so do the Mask R-CNN
    twins (neck and heads built and initialised after the backbone)."""
    import os.path as osp

    from mmengine.config import Config

    from mmcached.utils.runner_model import build_runner_model
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__))))
    for cached_cfg, plain_cfg in [
        ('cached-vit-mini-p8_1xb64-40e_digits.py',
         'vit-mini-p8_1xb64-40e_digits.py'),
        ('mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py',
         'mask-rcnn_pvt-mini_fpn_1xb4-10e_shapes.py'),
    ]:
        states = []
        for file in (cached_cfg, plain_cfg):
            cfg = Config.fromfile(osp.join(repo, 'configs', 'embedded', file))
            torch.manual_seed(7)
            model = build_runner_model(cfg)
            model.init_weights()
            states.append(model.state_dict())
        cached, plain = states
        assert set(plain) < set(cached)
        differ = [k for k in plain if not torch.equal(cached[k], plain[k])]
        assert not differ, (cached_cfg, differ[:5], len(differ))


class _TinyBackbone(nn.Module):
    """A backbone of its own: two stages of mmpretrain attentions."""

    def __init__(self, embed_dims=16, depths=(2, 1)):
        super().__init__()
        from mmpretrain.models.utils import MultiheadAttention
        self.stages = nn.ModuleList(
            nn.ModuleList(
                MultiheadAttention(embed_dims, 2) for _ in range(depth))
            for depth in depths)

    def forward(self, x, hw_shape):
        from mmcached.models.backbones import CachedMultiheadAttention
        for stage in self.stages:
            for attn in stage:
                cached = isinstance(attn, CachedMultiheadAttention)
                x = x + (attn(x, hw_shape) if cached else attn(x))
        return x


def test_a_new_backbone_only_says_where_its_caches_go():
    """docs/cache_layers.md: a new backbone subclasses the mixin and its
    base and gives cache_sites(); the mixin takes every cache argument."""
    from mmcached.models.backbones.base import CachedBackboneMixin, CacheSites

    class CachedTiny(CachedBackboneMixin, _TinyBackbone):

        def cache_sites(self):
            return CacheSites([list(s) for s in self.stages], [9, 4])

    model = CachedTiny(
        embed_dims=16,
        depths=(2, 1),
        cache_cfg=dict(type='ToyMixingCache', gain=0.5),
        cached_layers=[1, 2])
    assert model.cached_layer_ids == [[1], [0]]
    assert model.cache_lens == [9, 4] and model.reset_cache is False
    toys = [m for m in model.modules() if isinstance(m, ToyMixingCache)]
    assert len(toys) == 2 and all(t.gain.item() == 0.5 for t in toys)
    assert sorted(k for k in model.state_dict() if '.toy.' in k) == [
        'stages.0.1.toy.gain', 'stages.0.1.toy.memory', 'stages.1.0.toy.gain',
        'stages.1.0.toy.memory'
    ]
    x = torch.randn(2, 9, 16)
    assert model(x, (3, 3)).shape == (2, 9, 16)
    assert [t.seen for t in toys] == [[((2, 9, 16), (3, 3))]] * 2

    class Forgetful(CachedBackboneMixin, _TinyBackbone):
        pass

    with pytest.raises(NotImplementedError, match='Forgetful must say where'):
        Forgetful(embed_dims=16)
