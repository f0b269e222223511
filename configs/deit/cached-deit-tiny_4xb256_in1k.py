# Cached DeiT-Tiny on ImageNet-1k, the base of the DeiT configs: mmpretrain's
# deit/deit-tiny_4xb256_in1k.py (its bases, model and recipe) with GRC
# attention in every layer (CachedViT, cache ratio 0.5, cache length 197 =
# patches + class token at 224 px), on our ImageNet data settings. Other sizes
# set `arch` as mmpretrain's configs do; each uncached twin (same name without
# `cached-`) sets `cached_stages=[]`.
_base_ = [
    '../_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py', '../_base_/cache_runtime.py',
    '../_base_/cache/grc.py'
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CachedViT',
        arch='deit-tiny',
        cache_cfg=_base_.grc_cache_cfg,
        img_size=224,
        patch_size=16),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=192,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
    ),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ],
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]),
)

train_dataloader = dict(batch_size=256)
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }),
    clip_grad=dict(max_norm=5.0),
)
