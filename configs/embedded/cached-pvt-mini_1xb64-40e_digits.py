# A cached mini PVT (GRC attention) classifier on the embedded digits set, 40
# epochs at batch 64 on one CPU: ../pvt/cached-pvt-tiny_8xb128_in1k.py shrunk
# to 2 CPU cores. It is the "ImageNet pretraining" of the embedded paper
# protocol: mask-rcnn_cached-pvt-mini_fpn_1xb4-6e_digits-canvas.py starts
# from its checkpoint, caches reset (`bash tools/run_embedded.sh digits-det`
# runs both). Data, image scale and schedule are those of
# cached-vit-mini-p8_1xb64-40e_digits.py (sklearn's 8x8 digits upsampled to
# 32x32, built in memory), which this config inherits; the model and the
# optimizer's parameter settings are the PVT config's. "mini" is the PVT of
# the embedded shapes detector (16-128 channels, one layer per stage), with
# its cache grids at 32 px. The uncached twin, pvt-mini_1xb64-40e_digits.py,
# sets `cached_stages=[]`.
_base_ = './cached-vit-mini-p8_1xb64-40e_digits.py'

model = dict(
    backbone=dict(
        _delete_=True,  # a PVT instead of the base's ViT
        type='CachedPVT',
        arch=dict(
            embed_dims=16,
            num_layers=[1, 1, 1, 1],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4]),
        cache_cfg=_base_.grc_cache_cfg,
        # also the cache grids, which the detector keeps (8x8 ... 1x1)
        pretrain_img_size={{_base_.img_size}},
        out_indices=(3, ),
        drop_path_rate=0.0,
        norm_after_stage=True,
        init_cfg=None),
    # the PVT classifier's neck, head and init (no class token)
    neck=dict(_delete_=True, type='GlobalAveragePooling'),  # base: None
    head=dict(type='LinearClsHead', in_channels=128, cal_acc=False),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ])

# PVT's optimizer settings (../pvt/cached-pvt-tiny_8xb128_in1k.py): the
# schedule's custom keys without the class token's, no gradient clipping
optim_wrapper = dict(
    _delete_=True,
    optimizer={{_base_.optim_wrapper.optimizer}},
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.absolute_pos_embed': dict(decay_mult=0.0),
            '.relative_position_bias_table': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
