# RetinaNet with PVT-T + FPN, COCO 1x, the uncached baseline: the cached
# config with nothing cached (mmdet's PyramidVisionTransformer layer for
# layer), started from the uncached ImageNet run.
_base_ = './retinanet_cached-pvt-t_fpn_1x_coco.py'
checkpoint = 'work_dirs/pvt-tiny_8xb128_in1k/epoch_300.pth'

model = dict(
    backbone=dict(cached_stages=[], init_cfg=dict(checkpoint=checkpoint)))
