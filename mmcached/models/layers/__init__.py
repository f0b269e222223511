from .released_mapping import map_released_grc_state_dict
from .grc_attention import (GatedRecurrentCache, GRCAttention, reset_caches,
                            resize_tokens)
from .memory_caching import MemoryCachingAttention

__all__ = [
    'GatedRecurrentCache', 'GRCAttention', 'reset_caches', 'resize_tokens',
    'map_released_grc_state_dict', 'MemoryCachingAttention'
]
