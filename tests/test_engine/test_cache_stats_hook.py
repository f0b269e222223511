"""CacheStatsHook and what it reads (the layers' ``cache_stats``, named by
mmcached.analysis.cache_inspect).
The hook's scalars in a real run's vis_data JSON are checked in
tests/test_utils/test_cache_tools.py, on the runs its tools use."""
import math

import pytest
import torch
from mmengine.hooks import LoggerHook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import init_default_scope

from mmcached.analysis import cache_layer_stats, named_cache_layers
from mmcached.engine import CacheStatsHook
from mmcached.models.backbones import CachedPVT, CachedViT
from mmcached.models.layers import GRCAttention

VIT = dict(
    arch=dict(
        embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=32),
    img_size=32,
    patch_size=8)


def _rms(t):
    return t.pow(2).mean().sqrt().item()


def test_grc_stats_read_the_layer():
    torch.manual_seed(0)
    layer = GRCAttention(embed_dims=32, num_heads=4, cache_len=16)
    layer.init_weights()
    lam = torch.tensor([-2., 0., 1., 3.])
    with torch.no_grad():
        layer.lam.copy_(lam)
    assert torch.allclose(layer.mix_weights(), torch.sigmoid(lam))
    assert set(layer.cache_stats()) == {'mix', 'rms'}  # no update yet
    layer.train()
    for _ in range(2):  # the second update starts from a non-empty cache
        before = layer.cache.memory.clone()
        layer(torch.randn(2, 16, 32), torch.randn(2, 16, 32))
    after = layer.cache.memory
    stats = layer.cache_stats()
    assert stats['mix'] == pytest.approx(torch.sigmoid(lam).mean().item())
    assert stats['rms'] == pytest.approx(_rms(after), rel=1e-5)
    assert stats['update_rms'] == pytest.approx(_rms(after - before), rel=1e-5)
    assert 0 < stats['update_rms'] and stats['update_rms'] != pytest.approx(
        stats['rms'])
    # eval forwards leave the cache, so the stats, as they are
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(2, 16, 32), torch.randn(2, 16, 32))
    assert layer.cache_stats() == stats
    assert cache_layer_stats(layer) == stats
    assert cache_layer_stats(torch.nn.Linear(2, 2)) == {}


def test_layer_names():
    vit = CachedViT(**VIT)
    assert list(named_cache_layers(vit)) == ['layer0', 'layer1', 'layer2']
    pvt = CachedPVT(
        embed_dims=8, num_layers=[2, 1, 1, 2], cached_layers=[1, 2, 5])
    layers = named_cache_layers(pvt)
    assert list(layers) == ['stage0.layer1', 'stage1.layer0', 'stage3.layer1']
    # named after where they sit: the same modules as the backbone's paths
    paths = {id(m): p for p, m in pvt.named_modules()}
    assert [paths[id(m)] for m in layers.values()] == [
        'layers.0.1.2.attn.grc', 'layers.1.1.1.attn.grc',
        'layers.3.1.2.attn.grc'
    ]
    assert not named_cache_layers(CachedViT(**VIT, cached_stages=[]))


class _Runner:
    """What the hook reads of a runner."""

    def __init__(self, model, name, logger_interval=2, iters=5):
        self.model = model
        self.hooks = [LoggerHook(interval=logger_interval)]
        self.logger = MMLogger.get_current_instance()
        self.message_hub = MessageHub.get_instance(name)
        self.train_dataloader = range(iters)


def _train(runner, hook, iters):
    hook.before_train(runner)
    for i in range(iters):
        runner.model(torch.randn(2, 3, 32, 32))
        hook.after_train_iter(runner, i)


def test_hook_logs_at_the_logger_interval():
    torch.manual_seed(0)
    model = CachedViT(**VIT).train()
    runner = _Runner(model, 'test-cache-stats-hook')
    hook = CacheStatsHook()
    hook.before_train(runner)
    assert hook.interval == 2  # the LoggerHook's
    runner.model(torch.randn(2, 3, 32, 32))
    hook.after_train_iter(runner, 0)
    assert not runner.message_hub.log_scalars  # iteration 1 of 2
    hook.after_train_iter(runner, 1)
    scalars = runner.message_hub.log_scalars
    expected = {
        f'train/cache_{stat}/layer{i}'
        for stat in ('mix', 'rms', 'update_rms') for i in range(3)
    }
    assert set(scalars) == expected
    layers = named_cache_layers(model)
    for name, layer in layers.items():
        stats = layer.cache_stats()
        for stat, value in stats.items():
            logged = scalars[f'train/cache_{stat}/{name}'].current()
            assert math.isfinite(logged) and logged == pytest.approx(value)


def test_hook_logs_nothing_without_cache_layers():
    model = CachedViT(**VIT, cached_stages=[]).train()
    runner = _Runner(model, 'test-cache-stats-hook-uncached', 1)
    _train(runner, CacheStatsHook(), 3)
    assert not runner.message_hub.log_scalars


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain', 'mmengine'])
def test_hook_builds_from_every_scope(scope):
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import HOOKS
    elif scope == 'mmpretrain':
        from mmpretrain.registry import HOOKS
    else:
        from mmengine.registry import HOOKS
    hook = HOOKS.build(dict(type='CacheStatsHook', interval=5))
    assert isinstance(hook, CacheStatsHook) and hook.interval == 5
    with pytest.raises(ValueError, match='interval'):
        HOOKS.build(dict(type='CacheStatsHook', interval=0))
