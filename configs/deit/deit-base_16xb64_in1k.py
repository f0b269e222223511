# DeiT-Base on ImageNet-1k: mmpretrain's config and recipe (the uncached
# baseline of cached-deit-base_16xb64_in1k.py), with our data root.
data_root = 'data/imagenet/'

_base_ = 'mmpretrain::deit/deit-base_16xb64_in1k.py'
custom_imports = dict(imports=['mmcached'], allow_failed_imports=False)

train_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
