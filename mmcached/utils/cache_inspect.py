"""A model's cache layers, named by where they sit, and what each holds.

Shared by the training-curve hook (:class:`~mmcached.engine.CacheStatsHook`)
and ``tools/analysis/visualize_cache.py``. What can be read depends on the
kind of cache layer, so each kind has its own small reader; a kind without
one (e.g. Memory Caching, which keeps no state between images) is simply
not reported.
"""
import math
from collections import OrderedDict
from typing import Dict

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper

from mmcached.models.layers import cache_sync
from mmcached.models.layers.cache_layer import BaseCacheLayer
from mmcached.models.layers.grc_attention import GRCAttention


def named_cache_layers(model: nn.Module) -> 'OrderedDict[str, nn.Module]':
    """Every cache layer of ``model`` (a wrapper is unwrapped), in module
    order, by a short name: ``stage{i}.layer{j}`` (``layer{j}`` for a
    one-stage backbone such as ViT), j counted within the stage, as the
    cached backbones select layers (``cached_layer_ids``); the module path
    (``backbone.`` and the host attention's ``.attn.<name>`` dropped) for
    layers outside such a backbone."""
    if is_model_wrapper(model):
        model = model.module
    named = OrderedDict()
    for path, module in model.named_modules():
        ids = getattr(module, 'cached_layer_ids', None)
        if ids is None:
            continue
        layers = [m for m in module.modules() if isinstance(m, BaseCacheLayer)]
        sites = [(i, j) for i, stage in enumerate(ids) for j in stage]
        if len(sites) != len(layers):  # not one of our backbones' layouts
            continue
        for (i, j), layer in zip(sites, layers):
            name = f'stage{i}.layer{j}' if len(ids) > 1 else f'layer{j}'
            named[name] = layer
    seen = {id(m) for m in named.values()}
    for path, module in model.named_modules():
        if isinstance(module, BaseCacheLayer) and id(module) not in seen:
            short = path[len('backbone.'):] if path.startswith(
                'backbone.') else path
            short = short.rsplit(f'.attn.{module.name}', 1)[0]
            named[short] = module
    return named


def mix_weights(layer: nn.Module) -> torch.Tensor:
    """GRC: sigma(lam_h) per head (H, ), the share of the cache attention
    in each head's output (0: self-attention only, 1: cache only)."""
    _check_grc(layer)
    return torch.sigmoid(layer.lam.detach().float())


def _rms(t: torch.Tensor) -> float:
    return t.detach().float().norm().item() / math.sqrt(max(t.numel(), 1))


@torch.no_grad()
def grc_stats(layer: nn.Module) -> Dict[str, float]:
    """What a GRC layer holds now, as plain floats:

    - ``mix``: mean over heads of sigma(lam_h);
    - ``rms``: the cache's root-mean-square entry (its Frobenius norm
      / sqrt(T_m * D_m), so that layers of different sizes share one axis);
    - ``update_rms``: the same of its last training update, C_t - C_{t-1}
      (the buffer minus the copy the cache kept before writing); absent
      before the first training step.
    """
    _check_grc(layer)
    cache = layer.cache
    cache_sync.before_read(cache.memory)  # a pending cross-rank update
    stats = dict(mix=mix_weights(layer).mean().item(), rms=_rms(cache.memory))
    before = cache._pre_update
    if before is not None and before.shape == cache.memory.shape:
        stats['update_rms'] = _rms(cache.memory -
                                   before.to(cache.memory.dtype))
    return stats


#: cache layer class -> its reader of scalar statistics
STATS_READERS = {GRCAttention: grc_stats}


def cache_layer_stats(layer: nn.Module) -> Dict[str, float]:
    """The statistics of ``layer`` by its kind's reader; {} for a kind that
    has none."""
    for cls, reader in STATS_READERS.items():
        if isinstance(layer, cls):
            return reader(layer)
    return {}


def _check_grc(layer):
    if not isinstance(layer, GRCAttention):
        raise TypeError(f'expected a GRCAttention layer, got '
                        f'{type(layer).__name__}')
