# Mask R-CNN with cached Swin-T + FPN, COCO 1x: mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py with GRC
# attention. The backbone starts from the cached ImageNet run of
# configs/swin/cached-swin-tiny_16xb64_in1k.py, with the caches reset to
# zeros (reset_cache=True) as in the paper.
data_root = 'data/coco/'
checkpoint = 'work_dirs/cached-swin-tiny_16xb64_in1k/epoch_300.pth'

_base_ = './mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        type='CachedSwin',
        cache_ratio=0.5,
        reset_cache=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')))

train_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
val_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
