# Cached PVTv2-B1 on ImageNet-1k (recipe of cached-pvtv2-b2).
_base_ = './cached-pvtv2-b2_8xb128_in1k.py'

model = dict(backbone=dict(arch='b1'))
