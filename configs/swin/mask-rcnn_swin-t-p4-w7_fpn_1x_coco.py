# Mask R-CNN with Swin-T + FPN, COCO 1x, the uncached baseline: the cached
# config with nothing cached (mmdet's SwinTransformer layer for layer),
# started from the uncached ImageNet run.
_base_ = './mask-rcnn_cached-swin-t-p4-w7_fpn_1x_coco.py'
checkpoint = 'work_dirs/swin-tiny_16xb64_in1k/epoch_300.pth'

model = dict(
    backbone=dict(cached_stages=[], init_cfg=dict(checkpoint=checkpoint)))
