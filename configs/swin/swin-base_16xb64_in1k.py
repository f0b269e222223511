# Swin-Base on ImageNet-1k: mmpretrain's Swin config and recipe
# (AdamW lr 1e-3 at 1024 images, wd 0.05, 300 epochs cosine, 20 warm-up
# epochs, drop path 0.5), the uncached baseline of
# cached-swin-base_16xb64_in1k.py. The backbone is mmdet's SwinTransformer
# (as CachedSwin with no cached stage: the same layers and weight names, but
# a tuple output for GlobalAveragePooling), so that detection configs load
# the checkpoint as is.
data_root = 'data/imagenet/'

_base_ = 'mmpretrain::swin_transformer/swin-base_16xb64_in1k.py'
custom_imports = dict(imports=['mmcached'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='CachedSwin',
        cached_stages=[],  # no GRC: the uncached baseline
        arch='base',
        pretrain_img_size=224,
        drop_path_rate=0.5,
        out_indices=(3, ),
        convert_weights=False,
        init_cfg=None),
    head=dict(in_channels=1024))

train_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
