# Cached PVTv2-B3 on ImageNet-1k (recipe of cached-pvtv2-b2, drop path 0.3).
_base_ = './cached-pvtv2-b2_8xb128_in1k.py'

model = dict(backbone=dict(arch='b3', drop_path_rate=0.3))
