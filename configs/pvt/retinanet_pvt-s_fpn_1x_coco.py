# RetinaNet with PVT-S + FPN, COCO 1x: the uncached baseline of
# retinanet_cached-pvt-s_fpn_1x_coco.py. retinanet_pvt-t_fpn_1x_coco.py (recipe, data,
# data_root) with the Small backbone, as mmdet's own PVT configs do.
checkpoint = 'work_dirs/pvt-small_8xb128_in1k/epoch_300.pth'

_base_ = './retinanet_pvt-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(num_layers=[3, 4, 6, 3]),
    init_cfg=dict(checkpoint=checkpoint))
