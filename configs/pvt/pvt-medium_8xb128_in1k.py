# PVT-Medium on ImageNet-1k (uncached baseline); recipe of pvt-tiny with drop
# path 0.3.
data_root = 'data/imagenet/'

_base_ = './pvt-tiny_8xb128_in1k.py'

model = dict(backbone=dict(num_layers=[3, 4, 18, 3], drop_path_rate=0.3))

train_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
