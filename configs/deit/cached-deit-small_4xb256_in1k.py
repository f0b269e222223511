# Cached DeiT-Small (ViT with GRC attention, cache ratio 0.5) on ImageNet-1k:
# deit-small_4xb256_in1k.py with the cached backbone, same recipe.
data_root = 'data/imagenet/'

_base_ = './deit-small_4xb256_in1k.py'

model = dict(backbone=dict(type='CachedViT', cache_ratio=0.5))

train_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
