# RetinaNet with PVTv2-B2 + FPN, COCO 1x, the uncached baseline: the cached
# config with nothing cached, started from the uncached ImageNet run.
_base_ = './retinanet_cached-pvtv2-b2_fpn_1x_coco.py'
checkpoint = 'work_dirs/pvtv2-b2_8xb128_in1k/epoch_300.pth'

model = dict(
    backbone=dict(cached_stages=[], init_cfg=dict(checkpoint=checkpoint)))
