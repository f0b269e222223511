# Cached PVTv2-B2 on ImageNet-1k, the base of the PVTv2 classification
# configs: mmdet's PyramidVisionTransformerV2 with GRC attention in every
# layer (CachedPVTv2, cache ratio 0.5), with the PVT recipe of
# ../pvt/cached-pvt-tiny_8xb128_in1k.py and drop path 0.1. Other sizes set
# `arch`; each uncached twin (same name without `cached-`) sets
# `cached_stages=[]`.
_base_ = '../pvt/cached-pvt-tiny_8xb128_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,  # PVTv2 fixes norm_after_stage itself
        type='CachedPVTv2',
        arch='b2',
        cache_cfg=_base_.grc_cache_cfg,
        pretrain_img_size=224,
        out_indices=(3, ),
        drop_path_rate=0.1,
        init_cfg=None))
