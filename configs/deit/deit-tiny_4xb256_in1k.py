# DeiT-Tiny on ImageNet-1k, the uncached baseline: the cached config with
# nothing cached, i.e. mmpretrain's VisionTransformer layer for layer.
_base_ = './cached-deit-tiny_4xb256_in1k.py'

model = dict(backbone=dict(cached_stages=[]))
