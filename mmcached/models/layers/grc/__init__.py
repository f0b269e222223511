"""GRC attention (Cached Transformers): the layer and the mapping of the
authors' released weights onto it."""
from .grc_attention import GatedRecurrentCache, GRCAttention, resize_tokens
from .maps import cache_grid, cache_pca
from .released_mapping import map_released_grc_state_dict

__all__ = [
    'GatedRecurrentCache', 'GRCAttention', 'resize_tokens',
    'map_released_grc_state_dict', 'cache_grid', 'cache_pca'
]
