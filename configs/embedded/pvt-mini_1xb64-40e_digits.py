# The uncached twin of cached-pvt-mini_1xb64-40e_digits.py: the same config
# with nothing cached (mmdet's PyramidVisionTransformer layer for layer,
# weight name for weight name). mask-rcnn_pvt-mini_fpn_1xb4-6e_digits-canvas.py
# starts from its checkpoint.
_base_ = './cached-pvt-mini_1xb64-40e_digits.py'

model = dict(backbone=dict(cached_stages=[]))
