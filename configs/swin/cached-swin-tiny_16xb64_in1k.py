# Cached Swin-T on ImageNet-1k, the base of the Swin classification configs:
# mmdet's SwinTransformer with GRC attention in every block (CachedSwin,
# cache ratio 0.5, caches spatially reduced by (8, 4, 2, 1)), with
# mmpretrain's Swin-T model and recipe (swin-tiny_16xb64_in1k.py: AdamW lr
# 1e-3 at 1024 images, wd 0.05, 300 epochs cosine, 20 warm-up epochs, drop
# path 0.2). mmdet's backbone (not mmpretrain's) so that the detection
# configs load the checkpoint as is. Other sizes set `arch`; each uncached
# twin (same name without `cached-`) sets `cached_stages=[]`.
_base_ = [
    'mmpretrain::_base_/models/swin_transformer/tiny_224.py',
    '../_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py', '../_base_/cache_runtime.py',
    '../_base_/cache/grc.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='CachedSwin',
        arch='tiny',
        cache_cfg=_base_.grc_cache_cfg,
        pretrain_img_size=224,
        drop_path_rate=0.2,
        out_indices=(3, ),
        convert_weights=False,
        init_cfg=None))

optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
