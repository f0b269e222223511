# Mask R-CNN with cached PVTv2-B2 + FPN, COCO 1x: the recipe of
# ../pvt/mask-rcnn_cached-pvt-t_fpn_1x_coco.py with the PVTv2-B2 backbone,
# started from the cached ImageNet run of cached-pvtv2-b2_8xb128_in1k.py, its
# caches reset to zeros (cached_pvtv2_b2_backbone of
# ../_base_/cached-pvt_det_1x.py, whose checkpoint is this one).
_base_ = '../pvt/mask-rcnn_cached-pvt-t_fpn_1x_coco.py'
checkpoint = 'work_dirs/cached-pvtv2-b2_8xb128_in1k/epoch_300.pth'

model = dict(backbone=dict(_delete_=True, **_base_.cached_pvtv2_b2_backbone))
