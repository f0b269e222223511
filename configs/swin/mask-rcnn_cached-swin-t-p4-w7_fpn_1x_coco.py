# Mask R-CNN with cached Swin-T + FPN, COCO 1x: mmdet's
# swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py (its bases, model and recipe:
# AdamW lr 1e-4, wd 0.05, batch 16, 12 epochs) with CachedSwin, on our COCO
# data settings. The backbone starts from the cached ImageNet run of
# cached-swin-tiny_16xb64_in1k.py (mmdet's weight names already), its caches
# reset to zeros as in the paper. The uncached twin (same name without
# `cached-`) sets `cached_stages=[]` and its own checkpoint.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py', '../_base_/cache_runtime.py'
]
checkpoint = 'work_dirs/cached-swin-tiny_16xb64_in1k/epoch_300.pth'

model = dict(
    type='MaskRCNN',
    backbone=dict(
        _delete_=True,
        type='CachedSwin',
        arch='tiny',
        cache_cfg=dict(type='GRCAttention', cache_ratio=0.5, mode='released'),
        reset_cache=True,
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
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
optim_wrapper = dict(
    type='OptimWrapper',
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=0.0001,
        betas=(0.9, 0.999),
        weight_decay=0.05))
