# Swin-B on ImageNet-1k, the uncached baseline: the cached config with
# nothing cached, i.e. mmdet's SwinTransformer layer for layer (returning a
# tuple, which mmpretrain's neck needs).
_base_ = './cached-swin-base_16xb64_in1k.py'

model = dict(backbone=dict(cached_stages=[]))
