# RetinaNet with cached Swin-T + FPN, COCO 1x: mmdet's
# swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py (its bases and model) with
# CachedSwin, on our COCO data settings, trained with the AdamW of mmdet's
# Swin Mask R-CNN config at the RetinaNet lr 1e-4 (wd 0.05, batch 16). The
# backbone starts from the cached ImageNet run of
# cached-swin-tiny_16xb64_in1k.py, its caches reset to zeros. The uncached
# twin (same name without `cached-`) sets `cached_stages=[]` and its own
# checkpoint.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py', '../_base_/cache_runtime.py'
]
checkpoint = 'work_dirs/cached-swin-tiny_16xb64_in1k/epoch_300.pth'

model = dict(
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
        # only the levels FPN uses, or some parameters get no gradient
        out_indices=(1, 2, 3),
        with_cp=False,
        convert_weights=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))

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
