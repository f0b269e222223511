"""Memory Caching in the cached backbones through ``cache_cfg``: it takes the
place of the host's token mixing, reuses the host's projections, loads an
uncached checkpoint with only its own weights new, trains every parameter,
and its work is counted in the backbone's FLOPs."""
import pytest
import torch
from mmdet.models.backbones import (PyramidVisionTransformer,
                                    PyramidVisionTransformerV2)
from mmpretrain.models.backbones import VisionTransformer

from mmcached.models.backbones import CachedPVT, CachedPVTv2, CachedViT
from mmcached.models.layers import MemoryCachingAttention
from mmcached.utils.flops import get_model_complexity_info

MC = dict(
    type='MemoryCachingAttention',
    segmentation='uniform',
    num_segments=3,
    causal=False)
PVT_TINY = dict(
    embed_dims=8,
    num_layers=[1, 1, 1, 1],
    mlp_ratios=[2] * 4,
    pretrain_img_size=64)
VIT_TINY = dict(
    arch=dict(
        embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32),
    img_size=32,
    patch_size=8)
CASES = {
    'pvt': (CachedPVT, PyramidVisionTransformer, PVT_TINY),
    'pvtv2': (CachedPVTv2, PyramidVisionTransformerV2, PVT_TINY),
    'vit': (CachedViT, VisionTransformer, VIT_TINY),
}


def _mc_layers(model):
    return [
        m for m in model.modules() if isinstance(m, MemoryCachingAttention)
    ]


@pytest.mark.parametrize('name', sorted(CASES))
@pytest.mark.parametrize('hw', [(64, 64), (40, 72)])
def test_shapes_and_host_projections(name, hw):
    cls, base_cls, kw = CASES[name]
    model, base = cls(cache_cfg=MC, **kw), base_cls(**kw)
    layers = _mc_layers(model)
    assert layers and all(m.host_projections for m in layers)
    # the host's q / k / v / out projections, not its own
    assert all(not hasattr(m, 'qkv') and not hasattr(m, 'proj')
               for m in layers)
    x = torch.randn(2, 3, *hw)
    for out, ref in zip(model(x), base(x)):
        assert out.shape == ref.shape and torch.isfinite(out).all()


@pytest.mark.parametrize('name', sorted(CASES))
def test_uncached_checkpoint_loads_and_every_weight_trains(name, tmp_path):
    cls, base_cls, kw = CASES[name]
    torch.manual_seed(0)
    base = base_cls(**kw)
    path = str(tmp_path / 'base.pth')
    torch.save(base.state_dict(), path)
    # (PVT's converter is for official checkpoints, not mmdet's names)
    extra = {} if name == 'vit' else dict(convert_weights=False)
    model = cls(
        cache_cfg=MC,
        init_cfg=dict(type='Pretrained', checkpoint=path),
        **extra,
        **kw)
    model.init_weights()
    sd, base_sd = model.state_dict(), base.state_dict()
    new = set(sd) - set(base_sd)
    assert new and all('.attn.mc.' in k for k in new)
    # only PVT's key reduction (replaced by MC's mixing) is not loaded
    dropped = set(base_sd) - set(sd)
    assert all('.attn.sr.' in k or '.attn.norm.' in k for k in dropped)
    for k in set(sd) & set(base_sd):
        assert torch.equal(sd[k], base_sd[k]), k
    model.train()
    outs = model(torch.randn(2, 3, 48, 56))
    sum(o.float().pow(2).mean() for o in outs).backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f'{n} gets no gradient'


@pytest.mark.parametrize('name', ['pvtv2', 'vit'])
def test_flops_count_mc(name):
    """The FLOP counter sees MC's work (more than the uncached model's),
    growing linearly, not quadratically, with the tokens for a fixed number
    of segments."""
    cls, base_cls, kw = CASES[name]

    def flops(model, size):
        model.eval()  # some bases' train() returns None
        return get_model_complexity_info(
            model,
            inputs=(torch.randn(1, 3, size, size), ),
            show_table=False,
            show_arch=False)['flops']

    model, base = cls(cache_cfg=MC, **kw), base_cls(**kw)
    assert flops(model, 64) > flops(base, 64)
    # Segments longer than a block (64 tokens) at both sizes: 4x the tokens
    # scale linear parts by 4, a quadratic part would scale by 16.
    ratio = flops(model, 256) / flops(model, 128)
    assert 3 < ratio < 5, ratio
