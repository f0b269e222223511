# Mask R-CNN with Swin-T + FPN, COCO 1x: mmdet's config and Swin recipe
# (AdamW lr 1e-4, wd 0.05, batch 16, 12 epochs), the uncached baseline of
# mask-rcnn_cached-swin-t-p4-w7_fpn_1x_coco.py. The backbone starts from our
# ImageNet run of configs/swin/swin-tiny_16xb64_in1k.py, whose weights have
# mmdet's names already (no conversion); mmdet's Swin keeps the keys under
# 'backbone.'.
data_root = 'data/coco/'
checkpoint = 'work_dirs/swin-tiny_16xb64_in1k/epoch_300.pth'

_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
custom_imports = dict(imports=['mmcached'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        convert_weights=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))

train_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
val_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
