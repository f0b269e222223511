# What the Swin detection configs (Mask R-CNN and RetinaNet on COCO,
# ../swin/) share besides their detector and data: mmdet's schedule_1x.py
# (12 epochs at batch 16) with the AdamW of mmdet's Swin Mask R-CNN config
# (lr 1e-4, wd 0.05, no decay on norms and position tables), the runtime,
# and the backbone, as a variable. A detection config sets `model.backbone`
# from it (after `_delete_=True`, which drops the base detector's ResNet),
# with its own `out_indices`. The backbone starts from the cached ImageNet
# run of ../swin/cached-swin-tiny_16xb64_in1k.py (mmdet's weight names
# already), its caches reset to zeros as in the paper; the uncached twins set
# `cached_stages=[]` and their own checkpoint.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py', './cache_runtime.py', './cache/grc.py'
]

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    optimizer=dict(
        _delete_=True,  # its SGD
        type='AdamW',
        lr=0.0001,
        betas=(0.9, 0.999),
        weight_decay=0.05))

checkpoint = 'work_dirs/cached-swin-tiny_16xb64_in1k/epoch_300.pth'
cached_swin_t_backbone = dict(
    type='CachedSwin',
    arch='tiny',
    cache_cfg=_base_.grc_cache_cfg,
    window_size=7,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.2,
    patch_norm=True,
    with_cp=False,
    reset_cache=True,
    convert_weights=False,
    init_cfg=dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
