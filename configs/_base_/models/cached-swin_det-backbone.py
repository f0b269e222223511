# The backbone of the Swin detection configs (Mask R-CNN and RetinaNet,
# ../../swin/), written once for both detectors, with the AdamW both train it
# with (mmdet's Swin Mask R-CNN recipe: lr 1e-4, wd 0.05, no decay on norms
# and position tables). A detection config sets `model.backbone` from the
# variable (after `_delete_=True`, which drops the base detector's ResNet)
# and its `out_indices`, and `optim_wrapper` from the other. The backbone
# starts from the cached ImageNet run of
# ../../swin/cached-swin-tiny_16xb64_in1k.py (mmdet's weight names already),
# its caches reset to zeros as in the paper; the uncached twins set
# `cached_stages=[]` and their own checkpoint.
_base_ = '../cache/grc.py'

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
# what the detection configs' `optim_wrapper` changes in mmdet's schedule_1x.py
swin_det_optim_wrapper = dict(
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
