# Cached PVT-Tiny on ImageNet-1k, the base of the PVT / PVTv2 classification
# configs: mmdet's PyramidVisionTransformer with GRC attention in every layer
# (CachedPVT; cache ratio 0.5, one cache token per patch of each stage at
# 224 px), in an mmpretrain ImageClassifier. Other sizes set `arch`; each
# uncached twin (same name without `cached-`) sets `cached_stages=[]`.
# Recipe of PVT and of the Cached Transformers paper: AdamW, lr 5e-4 per 512
# images (1e-3 at 8 x 128), wd 0.05, 300 epochs cosine, 5 warm-up epochs,
# drop path 0.1, label smoothing 0.1, Mixup / CutMix, RandAugment.
_base_ = [
    '../_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py', '../_base_/cache_runtime.py',
    '../_base_/cache/grc.py'
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CachedPVT',
        arch='tiny',
        cache_cfg=_base_.grc_cache_cfg,
        pretrain_img_size=224,
        out_indices=(3, ),
        drop_path_rate=0.1,
        # A norm at the end of the last stage, as PVT's classifier has; kept
        # on every stage so that detection configs load the same weights.
        norm_after_stage=True,
        init_cfg=None),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ],
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]),
)

# 8 GPUs x 128 images
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'.pos_embed': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        end=5,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5)
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
# lr above is for 1024 images per step; --auto-scale-lr rescales it.
auto_scale_lr = dict(base_batch_size=1024)
