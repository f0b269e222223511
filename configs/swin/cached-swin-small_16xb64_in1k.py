# Cached Swin-S on ImageNet-1k (recipe of cached-swin-tiny, drop path 0.3).
_base_ = './cached-swin-tiny_16xb64_in1k.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
