# The uncached twin of mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py: the
# same config with nothing cached (mmdet's PyramidVisionTransformer layer for
# layer, weight name for weight name).
_base_ = './mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py'

model = dict(backbone=dict(cached_stages=[]))
