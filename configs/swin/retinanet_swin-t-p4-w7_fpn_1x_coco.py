# RetinaNet with Swin-T + FPN, COCO 1x (uncached baseline of
# retinanet_cached-swin-t-p4-w7_fpn_1x_coco.py): mmdet's config, with the
# AdamW of its Swin Mask R-CNN config at the RetinaNet lr 1e-4, batch 16.
# ImageNet weights from configs/swin/swin-tiny_16xb64_in1k.py (mmdet's weight
# names already, so no conversion).
data_root = 'data/coco/'
checkpoint = 'work_dirs/swin-tiny_16xb64_in1k/epoch_300.pth'

_base_ = 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py'
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

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=0.0001,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
