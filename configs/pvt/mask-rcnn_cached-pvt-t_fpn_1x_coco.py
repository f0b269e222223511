# Mask R-CNN with cached PVT-T + FPN, COCO 1x: the base of the PVT / PVTv2 Mask
# R-CNN configs. Recipe of mmdet's PVT detection configs: AdamW, lr 0.0002 and
# wd 1e-4 at batch 16 (8 GPUs x 2), 12 epochs, 1333x800. The backbone starts
# from the cached ImageNet run of cached-pvt-tiny_8xb128_in1k.py (its
# norm_after_stage matches), its caches reset to zeros as in the paper.
# Schedule, runtime, the backbone (cached_pvt_t_backbone) and its `checkpoint`
# are ../_base_/cached-pvt_det_1x.py's, shared with RetinaNet. Other sizes set
# `arch` and the checkpoint; each uncached twin (same name without `cached-`)
# sets `cached_stages=[]` and its own checkpoint.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance.py', '../_base_/cached-pvt_det_1x.py'
]
# Mask R-CNN's lr (the recipe's is RetinaNet's)
optim_wrapper = dict(optimizer=dict(lr=0.0002))

model = dict(
    backbone=dict(_delete_=True, **_base_.cached_pvt_t_backbone),
    neck=dict(in_channels=[64, 128, 320, 512]))
