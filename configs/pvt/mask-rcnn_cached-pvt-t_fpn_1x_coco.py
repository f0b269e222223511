# Mask R-CNN with cached PVT-T + FPN, COCO 1x: the base of the PVT / PVTv2 Mask
# R-CNN configs. Recipe of mmdet's PVT detection configs: AdamW, lr 0.0002 and
# wd 1e-4 at batch 16 (8 GPUs x 2), 12 epochs, 1333x800. The backbone starts
# from the cached ImageNet run of cached-pvt-tiny_8xb128_in1k.py (its
# norm_after_stage matches), its caches reset to zeros as in the paper: the
# variable cached_pvt_t_backbone and that `checkpoint`, shared with the other
# detector (../_base_/models/cached-pvt_det-backbones.py). Other sizes set
# `arch` and the checkpoint; each uncached twin (same name without `cached-`)
# sets `cached_stages=[]` and its own checkpoint.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/models/cached-pvt_det-backbones.py',
    '../_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py', '../_base_/cache_runtime.py'
]

model = dict(
    backbone=dict(_delete_=True, **_base_.cached_pvt_t_backbone),
    neck=dict(in_channels=[64, 128, 320, 512]))

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=0.0002, weight_decay=0.0001))
