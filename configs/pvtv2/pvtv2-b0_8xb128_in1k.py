# PVTv2-B0 on ImageNet-1k (uncached baseline of cached-pvtv2-b0_8xb128_in1k.py):
# mmdet's PVTv2 in an ImageClassifier, the PVT recipe
# (AdamW, lr 5e-4 per 512 images, wd 0.05, 300 epochs cosine, 5 warm-up
# epochs) with drop path 0.1.
data_root = 'data/imagenet/'

_base_ = '../pvt/pvt-tiny_8xb128_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        # mmdet's PyramidVisionTransformerV2 without GRC layers (see
        # ../pvt/pvt-tiny_8xb128_in1k.py for why it is spelled this way).
        type='CachedPVTv2',
        cached_stages=[],
        pretrain_img_size=224,
        embed_dims=32,
        num_layers=[2, 2, 2, 2],
        mlp_ratios=(8, 8, 4, 4),
        out_indices=(3, ),
        drop_path_rate=0.1,
        init_cfg=None),
    head=dict(in_channels=256))

train_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
