"""GRC attention (Cached Transformers): the layer (the plain math, the
reference), its fused path behind one switch (:mod:`.fused`,
:mod:`.switch`), its maps, and the mapping of the authors' released weights
onto it."""
from ..tokens import resize_tokens
from .grc_attention import GatedRecurrentCache, GRCAttention
from .maps import cache_grid, cache_pca
from .released_mapping import map_released_grc_state_dict
from .switch import fused_grc, set_fused_grc, use_fused_grc

__all__ = [
    'GatedRecurrentCache', 'GRCAttention', 'resize_tokens',
    'map_released_grc_state_dict', 'cache_grid', 'cache_pca', 'fused_grc',
    'set_fused_grc', 'use_fused_grc'
]
