# Mask R-CNN with PVT-M + FPN, COCO 1x: the uncached baseline of
# mask-rcnn_cached-pvt-m_fpn_1x_coco.py. mask-rcnn_pvt-t_fpn_1x_coco.py (recipe, data,
# data_root) with the Medium backbone, as mmdet's own PVT configs do.
checkpoint = 'work_dirs/pvt-medium_8xb128_in1k/epoch_300.pth'

_base_ = './mask-rcnn_pvt-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(num_layers=[3, 4, 18, 3]),
    init_cfg=dict(checkpoint=checkpoint))
