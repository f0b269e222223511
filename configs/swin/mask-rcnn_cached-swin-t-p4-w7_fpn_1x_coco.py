# Mask R-CNN with cached Swin-T + FPN, COCO 1x: mmdet's
# swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py (its bases, model and recipe:
# AdamW lr 1e-4, wd 0.05, batch 16, 12 epochs) with CachedSwin, on our COCO
# data settings. The backbone starts from the cached ImageNet run of
# cached-swin-tiny_16xb64_in1k.py (mmdet's weight names already), its caches
# reset to zeros as in the paper. Schedule, AdamW, runtime, the backbone
# (cached_swin_t_backbone) and its `checkpoint` are
# ../_base_/cached-swin_det_1x.py's, shared with RetinaNet. The uncached twin
# (same name without `cached-`) sets `cached_stages=[]` and its own checkpoint.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance.py', '../_base_/cached-swin_det_1x.py'
]

model = dict(
    type='MaskRCNN',
    backbone=dict(
        _delete_=True,
        out_indices=(0, 1, 2, 3),
        **_base_.cached_swin_t_backbone),
    neck=dict(in_channels=[96, 192, 384, 768]))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
