from .cache_layer import BaseCacheLayer, build_cache_layer
from .cache_sync import CacheSync, sync_caches
from .grc_attention import (GatedRecurrentCache, GRCAttention, reset_caches,
                            resize_tokens)
from .memory_caching import MemoryCachingAttention
from .released_mapping import map_released_grc_state_dict

__all__ = [
    'BaseCacheLayer', 'build_cache_layer', 'CacheSync', 'sync_caches',
    'GatedRecurrentCache', 'GRCAttention', 'MemoryCachingAttention',
    'reset_caches', 'resize_tokens', 'map_released_grc_state_dict'
]
