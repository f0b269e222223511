# Mask R-CNN with cached PVT-M + FPN, COCO 1x: the cached twin of
# mask-rcnn_pvt-m_fpn_1x_coco.py. mask-rcnn_cached-pvt-t_fpn_1x_coco.py with the
# Medium backbone, started from configs/pvt/cached-pvt-medium_8xb128_in1k.py
# with the caches reset to zeros.
checkpoint = 'work_dirs/cached-pvt-medium_8xb128_in1k/epoch_300.pth'

_base_ = './mask-rcnn_cached-pvt-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        num_layers=[3, 4, 18, 3], init_cfg=dict(checkpoint=checkpoint)))
