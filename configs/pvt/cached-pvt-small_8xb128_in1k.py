# Cached PVT-Small on ImageNet-1k (recipe of cached-pvt-tiny).
_base_ = './cached-pvt-tiny_8xb128_in1k.py'

model = dict(backbone=dict(arch='small'))
