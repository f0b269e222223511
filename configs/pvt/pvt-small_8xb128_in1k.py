# PVT-Small on ImageNet-1k, the uncached baseline: the cached config with
# nothing cached, i.e. mmdet's PyramidVisionTransformer layer for layer and
# weight name for weight name (returning a tuple, which mmpretrain's neck
# needs).
_base_ = './cached-pvt-small_8xb128_in1k.py'

model = dict(backbone=dict(cached_stages=[]))
