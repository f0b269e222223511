# Mask R-CNN with cached PVT-S + FPN, COCO 1x (recipe of the PVT-T config).
_base_ = './mask-rcnn_cached-pvt-t_fpn_1x_coco.py'
checkpoint = 'work_dirs/cached-pvt-small_8xb128_in1k/epoch_300.pth'

model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=checkpoint)))
