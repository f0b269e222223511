# The uncached twin of cached-vit_digits.py: the same config and model with
# no GRC layer. CachedViT with nothing cached is mmpretrain's
# VisionTransformer, layer for layer and weight name for weight name.
_base_ = './cached-vit_digits.py'

model = dict(backbone=dict(cached_stages=[]))
