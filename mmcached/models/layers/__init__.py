from .cache_layer import BaseCacheLayer, build_cache_layer
from .grc_attention import (GatedRecurrentCache, GRCAttention, reset_caches,
                            resize_tokens)
from .memory_caching import MemoryCachingAttention
from .released_mapping import map_released_grc_state_dict

__all__ = [
    'BaseCacheLayer', 'build_cache_layer', 'GatedRecurrentCache',
    'GRCAttention', 'MemoryCachingAttention', 'reset_caches', 'resize_tokens',
    'map_released_grc_state_dict'
]
