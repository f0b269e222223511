"""The per-image maps behind tools/analysis/visualize_cache.py: the
recorder (mmcached.analysis.cache_maps) and the layers' own ``cache_maps``."""
import pytest
import torch
import torch.nn.functional as F

from mmcached.analysis import CacheRecorder, named_cache_layers
from mmcached.models.backbones import CachedViT
from mmcached.models.layers import GRCAttention, MemoryCachingAttention
from mmcached.models.layers.grc import cache_grid, cache_pca
from mmcached.models.layers.grc.switch import fused_grc
from mmcached.models.layers.maps import normalise01, token_map
from mmcached.models.layers.memory_caching.per_token import gate_weights


def test_token_map_and_normalise():
    v = torch.arange(2 * 7, dtype=torch.float).view(2, 7)
    m = token_map(v, 1, (2, 3))
    assert m.shape == (2, 2, 3) and torch.equal(m[1, 0], v[1, 1:4])
    assert token_map(v[:, :5], 1, None).shape == (2, 2, 2)  # square
    assert token_map(v, 0, None).shape == (2, 1, 7)  # one row
    with pytest.raises(ValueError, match='does not hold'):
        token_map(v, 0, (2, 3))
    n = normalise01(torch.randn(3, 4, 5) * 7 + 2)
    assert n.flatten(1).amin(1).eq(0).all() and n.flatten(1).amax(1).allclose(
        torch.ones(3))
    assert normalise01(torch.ones(1, 2, 2)).eq(0).all()


@pytest.mark.parametrize('mode', ['released', 'paper'])
def test_recorded_cache_attention_is_the_layers(mode):
    """The maps read what the layer mixed: its output minus the recorded
    self-attention share (and positional term) is sigma(lam) times the
    cache attention from the cache the forward read, whose channel mean is
    the layer's cache-attention map."""
    torch.manual_seed(0)
    model = CachedViT(
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=32),
        img_size=32,
        patch_size=8,
        cache_cfg=dict(mode=mode))
    model.init_weights()
    model.train()
    model(torch.randn(3, 3, 32, 32))  # a non-empty cache
    model.eval()
    layers = named_cache_layers(model)
    outs, mems = {}, {}
    hooks = [
        m.register_forward_hook(lambda mod, a, o, n=n: outs.__setitem__(n, o))
        for n, m in layers.items()
    ] + [
        m.cache.register_forward_hook(
            lambda mod, a, o, n=n: mems.__setitem__(n, o))
        for n, m in layers.items()
    ]
    # the plain path, the reference the maps recompute with (the fused one
    # agrees to float32 rounding, which min-max normalisation magnifies)
    with CacheRecorder(layers) as rec, torch.no_grad(), fused_grc(False):
        model(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    for name, layer in layers.items():
        r = rec.records[name]
        x, o_self, hw = r['args']
        assert hw == (4, 4) and mems[name].shape == (2, 17, 16)
        B, N, D = x.shape
        H = layer.num_heads
        with torch.no_grad():
            o_mem = layer.cache_attention(x[..., :16], mems[name])
            a = torch.sigmoid(layer.lam)[:, None]
            rest = outs[name].view(B, N, H,
                                   -1) - (1 - a) * o_self.view(B, N, H, -1)
            if layer.pos_conv is not None:
                rest = rest - layer.positional_term(x, hw).view(B, N, H, -1)
            o_mem = o_mem.view(B, N, H, -1)
            expected = a * F.pad(o_mem, (0, D // H - o_mem.shape[-1]))
        torch.testing.assert_close(rest, expected, rtol=1e-4, atol=1e-5)
        maps = rec.maps(name)
        self_map, mem_map = maps['self_attention'], maps['cache_attention']
        assert self_map.shape == mem_map.shape == (2, 4, 4)
        for m in (self_map, mem_map):
            assert m.min() == 0 and m.max() == 1
        # the cache-attention map is o_mem's channel mean, normalised
        torch.testing.assert_close(
            mem_map,
            normalise01(o_mem.flatten(2).mean(-1)[:, 1:].view(2, 4, 4)))


def test_cache_pca():
    torch.manual_seed(0)
    layer = GRCAttention(
        embed_dims=16, num_heads=2, cache_len=(4, 6), sr_ratio=2)
    assert cache_grid(layer) == (0, (4, 6))
    # a cache varying along one direction only: PC 1 is that variation
    t = torch.linspace(-1, 1, 24)
    direction = torch.randn(8)
    layer.cache.memory.copy_((t[:, None] * direction)[None])
    rgb = cache_pca(layer)
    assert rgb.shape == (4, 6, 3) and rgb.min() >= 0 and rgb.max() <= 1
    pc1 = rgb[..., 0].flatten()
    # up to the sign of the component
    ramp = (t + 1) / 2
    assert torch.allclose(
        pc1, ramp, atol=1e-5) or torch.allclose(
            pc1, 1 - ramp, atol=1e-5)
    # ViT: class token + a square of patches -> the patch grid
    vit = GRCAttention(
        embed_dims=16, num_heads=2, cache_len=17, num_extra_tokens=1)
    assert cache_grid(vit) == (1, (4, 4))
    assert cache_pca(vit).shape == (4, 4, 3)
    assert cache_grid(GRCAttention(embed_dims=16, num_heads=2,
                                   cache_len=10)) == (0, (1, 10))


def _per_token_gates(layer, x):
    """The gates as the MC reference loop computes them, token by token,
    for one causal scan of x: (B, L, S), mean over heads."""
    B, L, _ = x.shape
    H, d = layer.num_heads, layer.head_dims
    _, k, _ = layer.project_qkv(x)
    u = layer.u_proj(x) if layer.u_proj is not None else None
    k = k.view(B, L, H, d).transpose(1, 2)
    u = None if u is None else u.view(B, L, H, d).transpose(1, 2)
    lengths = layer.options.segment_lengths(L)
    out = torch.zeros(B, H, L, len(lengths))
    cached, t = [], 0
    for s, n in enumerate(lengths):
        keys = torch.zeros(B, H, d)
        for _ in range(n):
            keys = keys + k[:, :, t]
            g_c, g_on = gate_weights(None if u is None else u[:, :, t], cached,
                                     keys, layer.options.aggregation,
                                     layer.options.top_k)
            for i, g in enumerate(g_c):
                out[:, :, t, i] = g
            out[:, :, t, s] = g_on
            t += 1
        cached.append(keys)
    return out.mean(1)


@pytest.mark.parametrize('aggregation,top_k', [('grm', None), ('ssc', 1),
                                               ('residual', None)])
def test_mc_gate_weights(aggregation, top_k):
    torch.manual_seed(0)
    layer = MemoryCachingAttention(
        embed_dims=16,
        num_heads=2,
        segment_size=3,
        aggregation=aggregation,
        top_k=top_k,
        causal=False)
    x = torch.randn(2, 10, 16)
    maps = layer.cache_maps(x)
    fwd, rev = maps['gates'], maps['gates_reversed']
    # uniform segments (10 tokens in 3: 4, 3, 3) follow the layer's own
    uniform = MemoryCachingAttention(
        16, 2, segmentation='uniform', num_segments=3, causal=False)
    assert uniform.cache_maps(x, None, None)['gates'].shape == (2, 10, 3)
    assert fwd.shape == rev.shape == (2, 10, 4)
    torch.testing.assert_close(fwd, _per_token_gates(layer, x))
    torch.testing.assert_close(rev, _per_token_gates(layer, x.flip(1)).flip(1))
    seg = torch.arange(10) // 3  # each token's own segment, forward scan
    after = torch.arange(4)[None] > seg[:, None]
    assert fwd[:, after].eq(0).all()  # no segment after the token's own
    if aggregation != 'residual':
        torch.testing.assert_close(fwd.sum(-1), torch.ones(2, 10))
    else:
        assert fwd[:, ~after].eq(1).all()
