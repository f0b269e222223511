# The uncached twin of cached-pvt_mask-rcnn_shapes.py: the same config and
# model with no GRC layer. CachedPVT with nothing cached is mmdet's
# PyramidVisionTransformer, layer for layer and weight name for weight name.
_base_ = './cached-pvt_mask-rcnn_shapes.py'

model = dict(backbone=dict(cached_stages=[]))
