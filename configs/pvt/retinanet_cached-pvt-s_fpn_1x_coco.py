# RetinaNet with cached PVT-S + FPN, COCO 1x: the cached twin of
# retinanet_pvt-s_fpn_1x_coco.py. retinanet_cached-pvt-t_fpn_1x_coco.py with the
# Small backbone, started from configs/pvt/cached-pvt-small_8xb128_in1k.py
# with the caches reset to zeros.
checkpoint = 'work_dirs/cached-pvt-small_8xb128_in1k/epoch_300.pth'

_base_ = './retinanet_cached-pvt-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        num_layers=[3, 4, 6, 3], init_cfg=dict(checkpoint=checkpoint)))
