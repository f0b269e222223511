# PVTv2-B4 on ImageNet-1k, the uncached baseline: the cached config with
# nothing cached, i.e. mmdet's PyramidVisionTransformerV2 layer for layer.
_base_ = './cached-pvtv2-b4_8xb128_in1k.py'

model = dict(backbone=dict(cached_stages=[]))
