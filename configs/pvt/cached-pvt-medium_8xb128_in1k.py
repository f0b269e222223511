# Cached PVT-Medium on ImageNet-1k: pvt-medium_8xb128_in1k.py with GRC attention
# (cache ratio 0.5, cache length = tokens per stage at 224 px), same recipe.
data_root = 'data/imagenet/'

_base_ = './pvt-medium_8xb128_in1k.py'

model = dict(
    backbone=dict(type='CachedPVT', cached_stages=None, cache_ratio=0.5))

train_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
