"""Cache layers: one contract (:mod:`.cache_layer`, with the generic
:mod:`.cache_sync` and :mod:`.maps`) and one package per method."""
from .cache_layer import BaseCacheLayer, build_cache_layer, reset_caches
from .cache_sync import CacheSync, sync_caches
from .grc import (GatedRecurrentCache, GRCAttention,
                  map_released_grc_state_dict, resize_tokens)
from .memory_caching import MCOptions, MemoryCachingAttention

__all__ = [
    'BaseCacheLayer', 'build_cache_layer', 'CacheSync', 'sync_caches',
    'GatedRecurrentCache', 'GRCAttention', 'MemoryCachingAttention',
    'MCOptions', 'reset_caches', 'resize_tokens', 'map_released_grc_state_dict'
]
