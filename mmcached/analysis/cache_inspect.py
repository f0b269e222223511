"""A model's cache layers, named by where they sit, and what each holds.

Shared by the training-curve hook (:class:`~mmcached.engine.CacheStatsHook`)
and ``tools/analysis/visualize_cache.py``. What can be read is each layer's
own business (``BaseCacheLayer.cache_stats``); a kind that reports nothing
(e.g. Memory Caching, which keeps no state between images) is simply not
reported.
"""
from collections import OrderedDict
from typing import Dict

import torch.nn as nn
from mmengine.model import is_model_wrapper

from mmcached.models.layers import BaseCacheLayer


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


def cache_layer_stats(layer: nn.Module) -> Dict[str, float]:
    """What ``layer`` reports of itself (``cache_stats``); {} for a module
    that is not a cache layer."""
    return layer.cache_stats() if isinstance(layer, BaseCacheLayer) else {}
