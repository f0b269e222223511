from .cached_pvt import (CachedPVT, CachedPVTv2,
                         CachedSpatialReductionAttention)
from .cached_swin import CachedShiftWindowMSA, CachedSwin
from .cached_vit import CachedMultiheadAttention, CachedViT

__all__ = [
    'CachedPVT', 'CachedPVTv2', 'CachedSwin', 'CachedViT',
    'CachedSpatialReductionAttention', 'CachedShiftWindowMSA',
    'CachedMultiheadAttention'
]
