# Mask R-CNN with PVT-M + FPN, COCO 1x: the uncached baseline of
# mask-rcnn_cached-pvt-m_fpn_1x_coco.py. Recipe of the PVT detection configs:
# AdamW lr 0.0002 and wd 1e-4 at batch 16 (8 GPUs x 2), 12 epochs, 1333x800.
# The backbone starts from our ImageNet run of configs/pvt/pvt-medium_8xb128_in1k.py
# (its norm_after_stage matches). mmdet's PVT ignores a `prefix` in its
# init_cfg, so the checkpoint is loaded on the whole detector, where the
# classifier's 'backbone.*' keys match the detector's.
data_root = 'data/coco/'
checkpoint = 'work_dirs/pvt-medium_8xb128_in1k/epoch_300.pth'

_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmcached'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidVisionTransformer',
        num_layers=[3, 4, 18, 3],
        norm_after_stage=True,
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 320, 512]),
    init_cfg=dict(type='Pretrained', checkpoint=checkpoint))

train_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
val_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=0.0002, weight_decay=0.0001))
