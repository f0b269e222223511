from .cached_attention import (CACHED_ATTENTIONS, CachedMultiheadAttention,
                               CachedShiftWindowMSA,
                               CachedSpatialReductionAttention, attach_cache)
from .cached_pvt import CachedPVT, CachedPVTv2
from .cached_swin import CachedSwin
from .cached_vit import CachedViT

__all__ = [
    'CachedPVT', 'CachedPVTv2', 'CachedSwin', 'CachedViT',
    'CachedSpatialReductionAttention', 'CachedShiftWindowMSA',
    'CachedMultiheadAttention', 'CACHED_ATTENTIONS', 'attach_cache'
]
