# Cached PVTv2-B2 on ImageNet-1k: pvtv2-b2_8xb128_in1k.py with GRC
# attention (cache ratio 0.5), same recipe.
data_root = 'data/imagenet/'

_base_ = './pvtv2-b2_8xb128_in1k.py'

model = dict(
    backbone=dict(type='CachedPVTv2', cached_stages=None, cache_ratio=0.5))

train_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
