# The uncached twin of mask-rcnn_cached-pvt-mini_fpn_1xb4-6e_digits-canvas.py:
# the same config with nothing cached (mmdet's PyramidVisionTransformer layer
# for layer, weight name for weight name), fine-tuned from the uncached
# classifier of pvt-mini_1xb64-40e_digits.py.
_base_ = './mask-rcnn_cached-pvt-mini_fpn_1xb4-6e_digits-canvas.py'
checkpoint = 'work_dirs/pvt-mini_1xb64-40e_digits/epoch_40.pth'

model = dict(
    backbone=dict(cached_stages=[], init_cfg=dict(checkpoint=checkpoint)))
