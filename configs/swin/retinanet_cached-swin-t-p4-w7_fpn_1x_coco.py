# RetinaNet with cached Swin-T + FPN, COCO 1x: mmdet's
# swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py (its bases and model) with
# CachedSwin, on our COCO data settings, trained with the AdamW of mmdet's Swin
# Mask R-CNN config at the RetinaNet lr 1e-4 (wd 0.05, batch 16). The backbone
# starts from the cached ImageNet run of cached-swin-tiny_16xb64_in1k.py, its
# caches reset to zeros. Schedule, AdamW, runtime, the backbone
# (cached_swin_t_backbone) and its `checkpoint` are
# ../_base_/cached-swin_det_1x.py's, shared with Mask R-CNN. The uncached twin
# (same name without `cached-`) sets `cached_stages=[]` and its own checkpoint.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/coco_detection.py', '../_base_/cached-swin_det_1x.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        # only the levels FPN uses, or some parameters get no gradient
        out_indices=(1, 2, 3),
        **_base_.cached_swin_t_backbone),
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
