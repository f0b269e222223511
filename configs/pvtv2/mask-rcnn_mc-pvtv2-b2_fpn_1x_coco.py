# Mask R-CNN with MC-PVTv2-B2 + FPN, COCO 1x: the cached PVTv2-B2 config
# (mask-rcnn_cached-pvtv2-b2_fpn_1x_coco.py) with Memory Caching in place of
# the attention, as in mc-pvtv2-b2_8xb128_in1k.py, started from that ImageNet
# run (mc_pvtv2_b2_backbone of ../_base_/cached-pvt_det_1x.py,
# whose checkpoint is this one). The 16 segments of each layer get longer with
# the image, so the cost stays linear in the tokens at 1333 x 800. The
# uncached twin is mask-rcnn_pvtv2-b2_fpn_1x_coco.py.
_base_ = './mask-rcnn_cached-pvtv2-b2_fpn_1x_coco.py'
checkpoint = 'work_dirs/mc-pvtv2-b2_8xb128_in1k/epoch_300.pth'

model = dict(backbone=dict(_delete_=True, **_base_.mc_pvtv2_b2_backbone))
