# Cached PVT-Medium on ImageNet-1k (recipe of cached-pvt-tiny, drop path 0.3).
_base_ = './cached-pvt-tiny_8xb128_in1k.py'

model = dict(backbone=dict(arch='medium', drop_path_rate=0.3))
