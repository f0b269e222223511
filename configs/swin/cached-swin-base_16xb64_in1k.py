# Cached Swin-Base (GRC attention in the window attention, cache
# ratio 0.5) on ImageNet-1k: swin-base_16xb64_in1k.py with GRC, same recipe.
data_root = 'data/imagenet/'

_base_ = './swin-base_16xb64_in1k.py'

model = dict(
    backbone=dict(type='CachedSwin', cached_stages=None, cache_ratio=0.5))

train_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
